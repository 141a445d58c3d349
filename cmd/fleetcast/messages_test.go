package main

import (
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/manifest"
)

// TestPublishNameMessages: a product or channel name that the origin cannot
// take is refused before anything is written, with every rule a name must
// follow (the agent's config says the same), as a usage error.
func TestPublishNameMessages(t *testing.T) {
	c := newCLI(t)
	c.write("app.bin", []byte("artifact"))
	for _, tc := range []struct {
		name, product, channel, want string
	}{
		{"reserved product", "roots", "stable", `--product "roots": want ` + manifest.NameRule},
		{"reserved channel", "app", "chunks", `--channel "chunks": want ` + manifest.NameRule},
		{"first character", "app", ".", `--channel ".": want ` + manifest.NameRule},
		{"upper case", "App", "stable", `--product "App": want ` + manifest.NameRule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run("publish", "--origin", "origin", "--key", "missing.key", "--product", tc.product, "--channel", tc.channel,
				"--version", "1.0", "app.bin")
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
	for _, rule := range []string{"starting with a letter or digit", "not roots or chunks"} {
		if !strings.Contains(manifest.NameRule, rule) {
			t.Errorf("manifest.NameRule %q does not say %q", manifest.NameRule, rule)
		}
	}
}
