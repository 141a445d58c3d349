package installers

import (
	"archive/tar"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the generated seed corpora in testdata/fuzz")

// fuzzLimits keep fuzzed extractions small.
var fuzzLimits = extractLimits{entries: 64, size: 1 << 20}

// fuzzSeeds are valid and malicious archives in every format.
func fuzzSeeds(t testing.TB) map[string][]byte {
	good := goodEntries("1.0")
	noLinks := slices.DeleteFunc(slices.Clone(good), func(e tarEntry) bool { return e.typ == tar.TypeLink })
	chain := []tarEntry{
		{name: "a", typ: tar.TypeSymlink, link: "."},
		{name: "b", typ: tar.TypeSymlink, link: "a/.."},
		{name: "b/x", body: "evil"},
	}
	return map[string][]byte{
		"good-tar-gz":   makeTarGz(t, good),
		"good-tar":      makeTar(t, good),
		"good-zip":      makeZip(t, noLinks),
		"dotdot":        makeTarGz(t, []tarEntry{{name: "../x", body: "evil"}}),
		"absolute":      makeTar(t, []tarEntry{{name: "/tmp/fleetcast-fuzz-abs", body: "evil"}}),
		"symlink-etc":   makeTar(t, []tarEntry{{name: "etc", typ: tar.TypeSymlink, link: "/etc"}, {name: "etc/x", body: "evil"}}),
		"symlink-chain": makeTar(t, chain),
		"hardlink-up":   makeTar(t, []tarEntry{{name: "h", typ: tar.TypeLink, link: "../x"}}),
		"char-device":   makeTar(t, []tarEntry{{name: "null", typ: tar.TypeChar}}),
		"zip-dotdot":    makeZip(t, []tarEntry{{name: "../x", body: "evil"}}),
		"zip-symlink":   makeZip(t, []tarEntry{{name: "l", typ: tar.TypeSymlink, link: "../../x"}, {name: "l/y", body: "evil"}}),
		"bomb":          makeTarGz(t, []tarEntry{{name: "zeros", size: 2 << 20}}),
		"sparse":        gnuSparseTar(t, "sparse", 1<<40, []byte("x")),
	}
}

// TestWriteFuzzCorpus writes the seeds as Go fuzz corpus files, with
// -update-fuzz-corpus: the archives of fuzzSeeds for both fuzz targets.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateFuzzCorpus {
		t.Skip("run with -update-fuzz-corpus to rewrite testdata/fuzz/FuzzExtract and FuzzInstallArchive")
	}
	for _, target := range []string{"FuzzExtract", "FuzzInstallArchive"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range fuzzSeeds(t) {
			content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzExtract unpacks arbitrary bytes into a directory three levels inside
// a sandbox: nothing may appear outside it, and on success every entry is
// a directory, regular file or symlink staying inside, within the limits.
//
// Its seeds are testdata/fuzz/FuzzExtract (see TestWriteFuzzCorpus).
func FuzzExtract(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sandbox := t.TempDir()
		cleanupTree(t, sandbox)
		artifact := writeFile(t, filepath.Join(sandbox, "artifact"), data, 0o600)
		dir := filepath.Join(sandbox, "a", "b", "root")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		err := extractArchive(context.Background(), artifact, dir, fuzzLimits)
		for p, want := range map[string][]string{sandbox: {"a", "artifact"}, filepath.Dir(dir): {"root"}, filepath.Dir(filepath.Dir(dir)): {"b"}} {
			if got := listDir(t, p); !slices.Equal(got, want) {
				t.Fatalf("extraction (error %v) wrote outside its directory: %s holds %v", err, p, got)
			}
		}
		if err == nil {
			checkTree(t, dir)
		}
	})
}

// checkTree checks an extracted tree independently of the extractor: only
// directories, regular files and relative symlinks that EvalSymlinks (or,
// dangling, a lexical join) keeps inside dir, at most fuzzLimits bytes.
func checkTree(t *testing.T, dir string) {
	var size int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch typ := d.Type(); {
		case typ.IsDir():
		case typ.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size += fi.Size()
		case typ&fs.ModeSymlink != 0:
			return checkSymlink(dir, p)
		default:
			return fmt.Errorf("%s has type %v", p, typ)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if size > fuzzLimits.size {
		t.Fatalf("extracted %d bytes, limit %d", size, fuzzLimits.size)
	}
}

func checkSymlink(dir, p string) error {
	target, err := os.Readlink(p)
	if err != nil {
		return err
	}
	if path.IsAbs(target) || filepath.IsAbs(target) {
		return fmt.Errorf("symlink %s -> %s is absolute", p, target)
	}
	if !inside(dir, filepath.Join(filepath.Dir(p), target)) {
		return fmt.Errorf("symlink %s -> %s leads outside lexically", p, target)
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		realDir, _ := filepath.EvalSymlinks(dir)
		if !inside(realDir, real) {
			return fmt.Errorf("symlink %s -> %s resolves to %s, outside %s", p, target, real, realDir)
		}
	}
	return nil
}

// inside reports whether p is dir or below it.
func inside(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
