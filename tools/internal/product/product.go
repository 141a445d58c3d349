// Package product builds the product's commands (module
// github.com/fleetcast/fleetcast) for the lab and bench tools, which live in
// a module of their own.
package product

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Module is the product's module path; the tools module requires it and
// replaces it with the directory above.
const Module = "github.com/fleetcast/fleetcast"

// Dir returns the product module's directory as the go command resolves it
// from the current directory: inside the tools module through its replace,
// inside the product module as the main module. Elsewhere it fails.
func Dir(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", Module)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("find module %s: %w\n%s", Module, err, stderr.Bytes())
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("find module %s: the go command gives no directory for it", Module)
	}
	return dir, nil
}

// Build builds the product's command in pkg, a directory relative to the
// product module's root such as "cmd/fleetcast", into the file out. It
// builds inside the product module, so the binary has the product's own
// dependency versions, not those the tools module selects.
func Build(ctx context.Context, pkg, out string) error {
	dir, err := Dir(ctx)
	if err != nil {
		return err
	}
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./"+filepath.ToSlash(pkg))
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, b)
	}
	return nil
}
