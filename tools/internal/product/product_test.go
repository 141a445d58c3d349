package product

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBuild builds the product's CLI from inside the tools module, which
// finds the product module through its replace directive.
func TestBuild(t *testing.T) {
	dir, err := Dir(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if dir != want {
		t.Errorf("Dir = %s, want %s (the directory above the tools module)", dir, want)
	}
	out := filepath.Join(t.TempDir(), "fleetcast")
	if err := Build(t.Context(), "cmd/fleetcast", out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Fatalf("built binary: %v, %v", fi, err)
	}
	if err := Build(t.Context(), "cmd/nosuchcommand", out+"2"); err == nil {
		t.Error("Build of a missing command succeeded")
	}
}
