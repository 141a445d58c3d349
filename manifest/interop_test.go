package manifest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestIndependentVerifier runs testdata/interop/verify.py, a verifier written
// in Python from docs/SPEC.md alone, over every test vector: evidence that the
// spec is complete enough for another implementation to agree with this one.
// It needs python3 with the cryptography package (Debian: python3-cryptography);
// .ci/run installs it and sets FLEETCAST_REQUIRE_INTEROP=1 so that CI cannot skip.
func TestIndependentVerifier(t *testing.T) {
	python := findPython(t)
	cmd := exec.Command(python, "../testdata/interop/verify.py", "../testdata/vectors")
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if err != nil || !strings.HasSuffix(last, " 0 failed") {
		t.Fatalf("independent verifier: %v\n%s", err, out)
	}
	t.Log(last)
}

func findPython(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import cryptography").Run() == nil {
			return p
		}
	}
	if os.Getenv("FLEETCAST_REQUIRE_INTEROP") == "1" {
		t.Fatal("python3 with the cryptography package is required (apt-get install python3-cryptography)")
	}
	t.Skip("python3 with the cryptography package not found (apt-get install python3-cryptography); skipping the independent verifier")
	return ""
}
