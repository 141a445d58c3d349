//go:build unix

package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/origintest"
	"github.com/fleetcast/fleetcast/internal/releasetest"
	"github.com/fleetcast/fleetcast/internal/treetest"
	"github.com/fleetcast/fleetcast/manifest"
)

// TestInstallTargetSwappedDuringDownload: the target's directory passes
// the allowed_targets check when the cycle starts, then is swapped for a
// symlink to a directory outside while the artifact downloads. Both the
// file and the archive installer refuse to follow it at install time, and
// nothing outside changes.
func TestInstallTargetSwappedDuringDownload(t *testing.T) {
	tests := []struct {
		installer string
		artifact  func(t *testing.T) []byte
	}{
		{"file", func(t *testing.T) []byte { return releasetest.Data(3, 200<<10) }},
		{"archive", func(t *testing.T) []byte {
			b, err := treetest.Tar(map[string]string{"bin/app": "app 1.0", "ssh/config": "evil"})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.installer, func(t *testing.T) {
			dir := t.TempDir()
			allowed, outside := filepath.Join(dir, "allowed"), filepath.Join(dir, "outside")
			for _, v := range []string{"ssh", "systemd", "cron.d"} {
				writeTestFile(t, filepath.Join(outside, v, "config"), v)
			}
			writeTestFile(t, filepath.Join(outside, "app.bin"), "the real one")
			sub := filepath.Join(allowed, "sub")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(sub, "app.bin")
			if tc.installer == "archive" {
				target = filepath.Join(sub, "app")
			}
			o := origintest.New(t, t.TempDir())
			gate := o.Hold(0)
			key := liveKey(t)
			publishApp(t, o.Dir(), key, liveRoot(t, key), tc.artifact(t), "1.0",
				manifest.Install{Installer: tc.installer, Target: target}, time.Time{}, 0)
			l := startLiveAgent(t, o.URL(), key, target, func(c *config.Config) {
				c.AllowedTargets = []string{allowed}
			})
			select {
			case <-gate.Held():
			case <-time.After(20 * time.Second):
				t.Fatal("the agent asked for no chunk within 20 s")
			}
			before := listing(t, outside)
			if err := os.Rename(sub, filepath.Join(allowed, "sub.old")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, sub); err != nil {
				t.Fatal(err)
			}
			gate.Open()
			st := l.waitStatus(t, "failed install", func(st peerproto.SubscriptionStatus) bool { return st.LastOutcome != "" })
			if st.InstalledSequence != 0 || !strings.Contains(st.LastError, "unsafe target") {
				t.Errorf("status after the swap: outcome %q, installed %d, error %q; want a refusal as an unsafe target",
					st.LastOutcome, st.InstalledSequence, st.LastError)
			}
			if d := treetest.Diff(before, listing(t, outside)); d != "" {
				t.Errorf("outside changed:\n%s", d)
			}
		})
	}
}

// listing is treetest.Listing of dir.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	m, err := treetest.Listing(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
