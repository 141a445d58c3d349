package installers

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseArchiveState(t *testing.T) {
	abs := filepath.Join(string(filepath.Separator), "opt", "app")
	quoted := strings.ReplaceAll(abs, `\`, `\\`)
	tests := []struct {
		name, doc string
		ok        bool
	}{
		{"empty record", `{"target":"` + quoted + `"}`, true},
		{"releases and staging", `{"target":"` + quoted + `","releases":["1.0","2.0"],"staging":[".3.0.tmp-ABC234"]}`, true},
		{"relative target", `{"target":"opt/app"}`, false},
		{"unclean target", `{"target":"` + quoted + `/../x"}`, false},
		{"release not a version", `{"target":"` + quoted + `","releases":["../etc"]}`, false},
		{"release recorded twice", `{"target":"` + quoted + `","releases":["1.0","1.0"]}`, false},
		{"staging not ours", `{"target":"` + quoted + `","staging":["ssh"]}`, false},
		{"staging with a slash", `{"target":"` + quoted + `","staging":[".1.0.tmp-A/B"]}`, false},
		{"null", `{"target":"` + quoted + `","releases":null}`, false},
		{"unknown field", `{"target":"` + quoted + `","prune":["ssh"]}`, false},
		{"trailing data", `{"target":"` + quoted + `"}x`, false},
		{"too large", `{"target":"` + quoted + `","releases":["` + strings.Repeat("1", maxArchiveStateSize) + `"]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseArchiveState([]byte(tc.doc))
			if (err == nil) != tc.ok || err != nil && !errors.Is(err, errArchiveState) {
				t.Fatalf("parseArchiveState: %v; want ok %v", err, tc.ok)
			}
		})
	}
}

// TestArchiveStateRoundTrip: what save writes, load reads back; a state
// of another target reads as empty; more than the bound is forgotten
// oldest first.
func TestArchiveStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "app")
	st := &archiveState{Target: target}
	for i := range maxArchiveRecorded + 2 {
		st.addRelease("1.0-" + strconv.Itoa(i))
	}
	st.Staging = []string{stagingName("2.0", "ABCD")}
	if err := st.save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := loadArchiveState(dir, target)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Releases) != maxArchiveRecorded || !slices.Equal(got.Releases, st.Releases) || !slices.Equal(got.Staging, st.Staging) {
		t.Fatalf("read back %d releases, staging %v", len(got.Releases), got.Staging)
	}
	other, err := loadArchiveState(dir, filepath.Join(dir, "other"))
	if err != nil || len(other.Releases) != 0 {
		t.Fatalf("state of another target: %+v, %v", other, err)
	}
	if err := os.WriteFile(filepath.Join(dir, archiveStateName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadArchiveState(dir, target); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("corrupt state: %v; want an error saying what to do", err)
	}
}

// FuzzParseArchiveState: parseArchiveState never panics, and what it
// accepts passes check and survives a save and load.
//
// Seeds: testdata/fuzz/FuzzParseArchiveState.
func FuzzParseArchiveState(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseArchiveState(data)
		if err != nil {
			return
		}
		if err := st.check(); err != nil {
			t.Fatalf("accepted a state that fails check: %v", err)
		}
		dir := t.TempDir()
		if err := st.save(dir); err != nil {
			t.Fatal(err)
		}
		back, err := loadArchiveState(dir, st.Target)
		if err != nil || !slices.Equal(back.Releases, st.Releases) || !slices.Equal(back.Staging, st.Staging) {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, st)
		}
	})
}
