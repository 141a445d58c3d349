package benchrun

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFleetcast(t *testing.T) {
	dir := t.TempDir()
	if got, err := Fleetcast(t.Context(), "/given/fleetcast", dir); err != nil || got != "/given/fleetcast" {
		t.Errorf("with -fleetcast given: %q, %v; want it as given", got, err)
	}
	got, err := Fleetcast(t.Context(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "fleetcast"); got != want {
		t.Errorf("built %q, want %q", got, want)
	}
	if fi, err := os.Stat(got); err != nil || fi.Size() == 0 {
		t.Errorf("built binary: %v, %v", fi, err)
	}
}
