package installers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fleetcast/fleetcast/internal/atomicfile"
	"github.com/fleetcast/fleetcast/internal/strictjson"
)

// A killed agent leaves the command it was running (install, rollback or
// health check) running on its own. So that a restarted agent never runs a
// second command, or changes the target, while that one still works, every
// command is recorded in StateDir/command.json while it runs, and Install
// (through awaitOrphan) first waits for a recorded command that still runs,
// up to its deadline, and then kills its process group (docs/INSTALLERS.md,
// "Commands and crashes").

const (
	// commandRecordName, in StateDir, records the running command.
	commandRecordName = "command.json"
	// commandRecordVersion is the version field of a command record.
	commandRecordVersion = 1
	// maxCommandRecord bounds the record read back: its argv is clipped
	// to maxRecordArgv bytes of text, at most 6 JSON bytes each.
	maxCommandRecord = 16 << 10
	// maxRecordArgv bounds the argument text kept in a record (it is for
	// the log only).
	maxRecordArgv = 1024
	// maxRecordID bounds the start time and boot id strings.
	maxRecordID = 64
)

// errCommandRecordTooLarge: a command record passes maxCommandRecord.
var errCommandRecordTooLarge = errors.New("command record too large")

// commandRecord is what StateDir/command.json holds while a command runs.
type commandRecord struct {
	Version int `json:"version"`
	// What is "install command", "rollback command" or "health check".
	What string `json:"what"`
	// Argv is the command, clipped to maxRecordArgv bytes: for the log.
	Argv []string `json:"argv"`
	// PID is the command's process id, on Unix also its process group id;
	// 0 while it is being started.
	PID int `json:"pid"`
	// Start is when the process started as the kernel reports it (Linux:
	// field 22 of /proc/PID/stat), so that another process that reused the
	// pid is not taken for it; "" where the platform cannot say.
	Start string `json:"start"`
	// Boot identifies the boot the command ran in; "" if unknown.
	Boot      string    `json:"boot"`
	Started   time.Time `json:"started"`
	Deadline  time.Time `json:"deadline"`
	TimeoutMS int64     `json:"timeout_ms"`
}

// commandKinds are the valid commandRecord.What values.
var commandKinds = []string{"install command", "rollback command", "health check"}

// parseCommandRecord decodes and checks a command record.
func parseCommandRecord(b []byte) (*commandRecord, error) {
	if len(b) > maxCommandRecord {
		return nil, fmt.Errorf("%w: more than %d bytes", errCommandRecordTooLarge, maxCommandRecord)
	}
	var rec commandRecord
	if err := strictjson.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	switch {
	case rec.Version != commandRecordVersion:
		return nil, fmt.Errorf("version %d, want %d", rec.Version, commandRecordVersion)
	case !slices.Contains(commandKinds, rec.What):
		return nil, fmt.Errorf("unknown command kind %q", rec.What)
	case len(rec.Argv) == 0:
		return nil, errors.New("no argv")
	// Never 1 or negative: kill(-1) signals every process there is.
	case rec.PID < 0 || rec.PID == 1 || rec.PID > math.MaxInt32:
		return nil, fmt.Errorf("pid %d out of range", rec.PID)
	case len(rec.Start) > maxRecordID || len(rec.Boot) > maxRecordID:
		return nil, errors.New("start time or boot id too long")
	case rec.Deadline.IsZero() || rec.TimeoutMS <= 0 || rec.TimeoutMS > math.MaxInt64/int64(time.Millisecond):
		return nil, errors.New("no deadline, or a timeout out of range")
	}
	return &rec, nil
}

// readCommandRecord reads and parses the record at path.
func readCommandRecord(path string) (*commandRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := strictjson.ReadAll(f, maxCommandRecord, errCommandRecordTooLarge)
	if err != nil {
		return nil, err
	}
	return parseCommandRecord(b)
}

// clipArgv returns argv with at most maxRecordArgv bytes of text, valid
// UTF-8; a clipped argument ends in "...".
func clipArgv(argv []string) []string {
	out := make([]string, 0, len(argv))
	left := maxRecordArgv
	for _, a := range argv {
		if left <= 0 {
			out = append(out, "...")
			break
		}
		if len(a) > left {
			a = strings.ToValidUTF8(a[:left], "") + "..."
		}
		left -= len(a)
		out = append(out, a)
	}
	return out
}

// recordPath is StateDir/command.json, or "" without a state directory
// (then nothing is recorded).
func (r *run) recordPath() string {
	if r.req.StateDir == "" {
		return ""
	}
	return filepath.Join(r.req.StateDir, commandRecordName)
}

// recordCommand records, durably, that the command is about to start. It
// returns the record to complete with recordStarted, or nil when there is
// nothing to record to. A failure to record is logged, not returned: the
// record only matters if the agent dies while the command runs.
func (r *run) recordCommand(what string, argv []string, timeout time.Duration) *commandRecord {
	path := r.recordPath()
	if path == "" {
		return nil
	}
	now := time.Now()
	rec := &commandRecord{Version: commandRecordVersion, What: what, Argv: clipArgv(argv), Boot: bootID(),
		Started: now, Deadline: now.Add(timeout), TimeoutMS: max(timeout.Milliseconds(), 1)}
	b, err := json.Marshal(rec)
	if err == nil {
		err = atomicfile.WriteFile(path, b, 0o600)
	}
	if err != nil {
		r.log.Warn("could not record the command", slog.String("reason", err.Error()))
	}
	return rec
}

// recordStarted adds the started process to the record. The write replaces
// the record by a rename but does not fsync, to keep the time between the
// start and the record short: a pid only matters while the machine runs, and
// after a crash of the machine the boot id no longer matches.
func (r *run) recordStarted(rec *commandRecord, pid int) {
	if rec == nil {
		return
	}
	rec.PID = pid
	start, err := procStart(pid)
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		r.log.Warn("could not read the command's start time", slog.String("reason", err.Error()))
	}
	rec.Start = start
	if err := writeFast(r.recordPath(), rec); err != nil {
		r.log.Warn("could not record the command's process", slog.String("reason", err.Error()))
	}
}

// writeFast replaces path with rec through a temporary file and a rename,
// without fsync.
func writeFast(path string, rec *commandRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// forgetCommand removes the record once the command has ended.
func (r *run) forgetCommand(rec *commandRecord) {
	if rec == nil {
		return
	}
	if err := os.Remove(r.recordPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log.Warn("could not remove the command record", slog.String("reason", err.Error()))
	}
}

// orphanTiming says how awaitOrphan polls and how long it gives a killed
// process group.
type orphanTiming struct {
	poll  time.Duration // between looks at the process group
	grace time.Duration // after SIGTERM, before SIGKILL
	gone  time.Duration // after SIGKILL, before giving up
}

var defaultOrphanTiming = orphanTiming{poll: 100 * time.Millisecond, grace: 10 * time.Second, gone: 10 * time.Second}

// awaitOrphan makes sure that no command recorded in StateDir by an earlier
// run (of an agent that was killed) still runs: it waits for it up to its
// deadline, then kills its process group. It returns an error only when
// ctx ends or the group survives SIGKILL; then the record is kept and no
// command may start.
func (r *run) awaitOrphan(ctx context.Context) error {
	return r.awaitOrphanWith(ctx, defaultOrphanTiming)
}

func (r *run) awaitOrphanWith(ctx context.Context, tm orphanTiming) error {
	path := r.recordPath()
	if path == "" {
		return nil
	}
	rec, err := readCommandRecord(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.log.Warn("unreadable record of an earlier command, removed", slog.String("reason", path+": "+err.Error()))
		return removeRecord(path)
	}
	log := r.log.With(slog.String("earlier", rec.What), slog.Any("earlier_argv", rec.Argv),
		slog.Int("earlier_pid", rec.PID), slog.Time("earlier_deadline", rec.Deadline))
	if err := r.settleOrphan(ctx, rec, log, tm); err != nil {
		return err
	}
	return removeRecord(path)
}

// settleOrphan waits for and kills the recorded command as needed.
func (r *run) settleOrphan(ctx context.Context, rec *commandRecord, log *slog.Logger, tm orphanTiming) error {
	st := probe(rec)
	switch st {
	case orphanUnrecorded:
		log.Warn("an earlier command was being started when the agent stopped",
			slog.String("reason", "its process was not recorded: if it runs, it may run alongside this install"))
		return nil
	case orphanGone, orphanReused, orphanOtherBoot:
		r.done("earlier command no longer runs", slog.String("earlier", rec.What), slog.String("reason", st.String()))
		return nil
	}
	log.Warn("an earlier command still runs, waiting for it", slog.String("reason", "the agent stopped while it ran; "+st.String()))
	// The recorded timeout also bounds the wait, in case the clock moved.
	until := rec.Deadline
	if limit := time.Now().Add(time.Duration(rec.TimeoutMS) * time.Millisecond); limit.Before(until) {
		until = limit
	}
	gone, err := waitGone(ctx, rec, until, tm.poll)
	switch {
	case err != nil:
		return err
	case gone:
		r.done("earlier command ended", slog.String("earlier", rec.What))
		return nil
	case st == orphanUnverified:
		log.Warn("an earlier command still runs past its deadline, not killed",
			slog.String("reason", "this platform cannot tell it from another process that reused its pid"))
		return nil
	}
	return r.killOrphan(ctx, rec, log, tm)
}

// killOrphan sends SIGTERM to the recorded process group, then SIGKILL.
func (r *run) killOrphan(ctx context.Context, rec *commandRecord, log *slog.Logger, tm orphanTiming) error {
	for _, force := range []bool{false, true} {
		if !probe(rec).runs() {
			break
		}
		log.Warn("killing the earlier command's process group", slog.Bool("force", force),
			slog.String("reason", "it still runs past its deadline"))
		if err := signalGroup(rec.PID, force); err != nil {
			return fmt.Errorf("kill earlier %s (process group %d): %w", rec.What, rec.PID, err)
		}
		wait := tm.grace
		if force {
			wait = tm.gone
		}
		gone, err := waitGone(ctx, rec, time.Now().Add(wait), tm.poll)
		if err != nil {
			return err
		}
		if gone {
			r.done("killed earlier command", slog.String("earlier", rec.What), slog.Int("earlier_pid", rec.PID))
			return nil
		}
	}
	return fmt.Errorf("earlier %s (process group %d) still runs after SIGKILL: not starting another", rec.What, rec.PID)
}

// orphanState is what probe finds of a recorded command.
type orphanState int

const (
	orphanUnrecorded orphanState = iota // the record has no pid
	orphanGone                          // no process of its group runs
	orphanReused                        // its pid now belongs to another process
	orphanOtherBoot                     // it ran before the machine restarted
	orphanRunning                       // its process group runs
	orphanUnverified                    // a group with its id runs; the platform cannot say whether it is the command
)

func (s orphanState) String() string {
	switch s {
	case orphanUnrecorded:
		return "its process was not recorded"
	case orphanGone:
		return "its process group is gone"
	case orphanReused:
		return "its pid now belongs to another process"
	case orphanOtherBoot:
		return "it ran before the machine restarted"
	case orphanRunning:
		return "its process group still runs"
	}
	return "a process group with its id runs (this platform cannot check its start time)"
}

// runs reports whether the state may be the recorded command running.
func (s orphanState) runs() bool { return s == orphanRunning || s == orphanUnverified }

// probe looks for the recorded command's process group.
func probe(rec *commandRecord) orphanState {
	switch {
	case rec.PID == 0:
		return orphanUnrecorded
	case rec.Boot != "" && rec.Boot != bootID():
		return orphanOtherBoot
	case isSelf(rec.PID):
		return orphanReused
	}
	start, err := procStart(rec.PID)
	switch {
	case err == nil && rec.Start != "" && start != rec.Start:
		return orphanReused
	case !groupAlive(rec.PID):
		return orphanGone
	case err == nil && rec.Start != "" && start == rec.Start:
		return orphanRunning
	case errors.Is(err, fs.ErrNotExist) && rec.Start != "":
		// The leader exited; its id stays taken while the group lives.
		return orphanRunning
	}
	return orphanUnverified
}

// waitGone polls until the recorded command no longer runs (true), until
// passes (false), or ctx ends.
func waitGone(ctx context.Context, rec *commandRecord, until time.Time, poll time.Duration) (bool, error) {
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		if !probe(rec).runs() {
			return true, nil
		}
		if !time.Now().Before(until) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("waiting for earlier %s (process group %d): %w", rec.What, rec.PID, ctx.Err())
		case <-ticker.C:
		}
	}
}

// removeRecord removes the record of an earlier command.
func removeRecord(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove record of an earlier command: %w", err)
	}
	return nil
}
