package installers

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goodRecord is a valid command record.
func goodRecord() commandRecord {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return commandRecord{Version: commandRecordVersion, What: "install command", Argv: []string{"/bin/sh", "-c", "x"},
		PID: 4242, Start: "123456", Boot: "e5022e6f-afef-43f6-8733-df5d95a8fbaf",
		Started: started, Deadline: started.Add(10 * time.Minute), TimeoutMS: 600000}
}

func marshalRecord(t testing.TB, rec commandRecord) []byte {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recordSeeds are valid and invalid records, as JSON text.
func recordSeeds(t testing.TB) map[string][]byte {
	change := func(f func(r *commandRecord)) []byte {
		r := goodRecord()
		f(&r)
		return marshalRecord(t, r)
	}
	good := string(marshalRecord(t, goodRecord()))
	return map[string][]byte{
		"good":             []byte(good),
		"pending":          change(func(r *commandRecord) { r.PID, r.Start = 0, "" }),
		"health-check":     change(func(r *commandRecord) { r.What = "health check" }),
		"pid-1":            change(func(r *commandRecord) { r.PID = 1 }),
		"pid-negative":     change(func(r *commandRecord) { r.PID = -4242 }),
		"pid-huge":         []byte(strings.Replace(good, `"pid":4242`, `"pid":4294967296`, 1)),
		"unknown-what":     change(func(r *commandRecord) { r.What = "script" }),
		"no-argv":          change(func(r *commandRecord) { r.Argv = []string{} }),
		"no-deadline":      change(func(r *commandRecord) { r.Deadline = time.Time{} }),
		"version-2":        change(func(r *commandRecord) { r.Version = 2 }),
		"unknown-field":    []byte(strings.Replace(good, `"pid"`, `"pgid":1,"pid"`, 1)),
		"field-case":       []byte(strings.Replace(good, `"pid"`, `"PID"`, 1)),
		"duplicate-pid":    []byte(strings.Replace(good, `"pid":4242`, `"pid":4242,"pid":1`, 1)),
		"null-argv":        []byte(strings.Replace(good, `"argv":["/bin/sh","-c","x"]`, `"argv":null`, 1)),
		"trailing-data":    []byte(good + "{}"),
		"long-start":       change(func(r *commandRecord) { r.Start = strings.Repeat("1", maxRecordID+1) }),
		"too-large":        []byte(strings.Replace(good, `"x"`, strconv.Quote(strings.Repeat("x", maxCommandRecord)), 1)),
		"truncated":        []byte(good[:len(good)/2]),
		"invalid-utf8":     []byte(strings.Replace(good, `"x"`, "\"\xff\"", 1)),
		"zero-timeout":     change(func(r *commandRecord) { r.TimeoutMS = 0 }),
		"huge-timeout":     change(func(r *commandRecord) { r.TimeoutMS = math.MaxInt64 }),
		"clipped-argv":     change(func(r *commandRecord) { r.Argv = clipArgv([]string{strings.Repeat("é", 2*maxRecordArgv)}) }),
		"deeply-nested":    []byte(strings.Repeat("[", 100)),
		"windows-argv-pid": change(func(r *commandRecord) { r.Argv, r.Boot = []string{`C:\install.exe`, "/quiet"}, "" }),
	}
}

func TestParseCommandRecord(t *testing.T) {
	valid := map[string]bool{"good": true, "pending": true, "health-check": true, "clipped-argv": true, "windows-argv-pid": true}
	for name, b := range recordSeeds(t) {
		t.Run(name, func(t *testing.T) {
			rec, err := parseCommandRecord(b)
			if (err == nil) != valid[name] {
				t.Fatalf("parse: %v; want valid %v", err, valid[name])
			}
			if name == "too-large" && !errors.Is(err, errCommandRecordTooLarge) {
				t.Errorf("error %v does not wrap errCommandRecordTooLarge", err)
			}
			if name == "good" && !reflect.DeepEqual(*rec, goodRecord()) {
				t.Errorf("parsed %+v, want %+v", *rec, goodRecord())
			}
		})
	}
}

func TestReadCommandRecordBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), commandRecordName)
	writeFile(t, path, []byte(strings.Repeat(" ", 10*maxCommandRecord)), 0o600)
	if _, err := readCommandRecord(path); !errors.Is(err, errCommandRecordTooLarge) {
		t.Fatalf("read: %v, want errCommandRecordTooLarge", err)
	}
}

// TestClipArgv: the worst argv a manifest allows still makes a record
// under the limit.
func TestClipArgv(t *testing.T) {
	worst := make([]string, 64)
	for i := range worst {
		worst[i] = strings.Repeat("\x01", 4096)
	}
	rec := goodRecord()
	rec.Argv = clipArgv(worst)
	b := marshalRecord(t, rec)
	if len(b) > maxCommandRecord {
		t.Fatalf("record of the worst argv is %d bytes, limit %d", len(b), maxCommandRecord)
	}
	if _, err := parseCommandRecord(b); err != nil {
		t.Fatalf("record of the worst argv: %v", err)
	}
	short := []string{"/bin/true", "a"}
	if got := clipArgv(short); !reflect.DeepEqual(got, short) {
		t.Errorf("clipArgv(%q) = %q", short, got)
	}
}

// TestWriteCommandRecordCorpus writes the seeds as Go fuzz corpus files,
// with -update-fuzz-corpus.
func TestWriteCommandRecordCorpus(t *testing.T) {
	if !*updateFuzzCorpus {
		t.Skip("run with -update-fuzz-corpus to rewrite testdata/fuzz/FuzzParseCommandRecord")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseCommandRecord")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range recordSeeds(t) {
		content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParseCommandRecord: what parses marshals to a record that parses to
// the same value.
//
// Its seeds are testdata/fuzz/FuzzParseCommandRecord (see
// TestWriteCommandRecordCorpus).
func FuzzParseCommandRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parseCommandRecord(data)
		if err != nil {
			return
		}
		again, err := parseCommandRecord(marshalRecord(t, *rec))
		if err != nil {
			t.Fatalf("re-encoded record does not parse: %v", err)
		}
		if !reflect.DeepEqual(normTimes(*rec), normTimes(*again)) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", *rec, *again)
		}
	})
}

// normTimes makes equal instants compare equal with reflect.DeepEqual.
func normTimes(r commandRecord) commandRecord {
	r.Started, r.Deadline = r.Started.UTC(), r.Deadline.UTC()
	return r
}
