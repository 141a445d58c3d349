//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/netlab"
)

// TestLabSmall runs the real fleetlab binary on the small configuration that
// CI can afford (4 agents, 32 MiB, origin 40 Mbit/s, agents 400 Mbit/s),
// every scenario and both baselines, and checks the goals loosely: tight
// enough to catch fleetcast falling back to origin-only behaviour, loose
// enough not to flake on a loaded 2-core machine.
func TestLabSmall(t *testing.T) {
	labRequire(t)
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "fleetlab"), ".").CombinedOutput(); err != nil {
		t.Fatalf("build fleetlab: %v\n%s", err, out)
	}
	for _, pkg := range []string{"cmd/fleetcast", "internal/cmd/hostilepeer"} {
		if _, err := findBinary(t.Context(), "", bin, pkg); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), filepath.Join(bin, "fleetlab"), "-n", "4", "-size", "32MiB",
		"-origin-rate", "40Mbit", "-peer-rate", "400Mbit", "-chunk-min", "64KiB", "-chunk-avg", "256KiB", "-chunk-max", "1MiB",
		"-scenarios", "all", "-systems", "fleetcast,curl,aria2", "-timeout", "15m", "-json", "-out", out,
		"-fleetcast", filepath.Join(bin, "fleetcast"), "-hostilepeer", filepath.Join(bin, "hostilepeer"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("fleetlab: %v\n%s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout, &rep); err != nil {
		t.Fatalf("fleetlab -json: %v\n%s", err, stdout)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fleetlab's table:\n%s", md)
	if fi, err := os.Stat(filepath.Join(out, "done.png")); err != nil || fi.Size() < 1000 {
		t.Errorf("done.png: %v (%v)", err, fi)
	}
	runs := map[string]runResult{}
	for _, r := range rep.Runs {
		runs[r.System+"/"+r.Scenario] = r
		checkAllDone(t, r)
	}
	checkGoals(t, &rep, runs)
}

// checkAllDone wants every host of the run to have the verified artifact and
// nothing reported wrong.
func checkAllDone(t *testing.T, r runResult) {
	t.Helper()
	for _, h := range r.Hosts {
		if h.Done <= 0 || h.Err != "" {
			t.Errorf("%s %s: host %s not done: %s", r.System, r.Scenario, h.Host, h.Err)
		}
	}
	if len(r.Problems) > 0 {
		t.Errorf("%s %s: problems: %s", r.System, r.Scenario, strings.Join(r.Problems, "; "))
	}
}

// checkGoals are the goals, loosened for CI.
func checkGoals(t *testing.T, rep *report, runs map[string]runResult) {
	t.Helper()
	base, curl, aria := runs["fleetcast/base"], runs["curl/base"], runs["aria2/base"]
	size := float64(rep.Size)
	if eg := float64(base.OriginEgress) / size; eg > 1.5 {
		t.Errorf("fleetcast: origin egress %.2f x S, want at most 1.5 (origin-only behaviour sends %d x)", eg, len(base.Hosts))
	}
	last := base.stats().last
	if r := last.Seconds() / rep.TMin.Seconds(); r > 2.5 {
		t.Errorf("fleetcast: last agent at %.2f x T_min, want at most 2.5", r)
	}
	if cl := curl.stats().last; last >= cl {
		t.Errorf("fleetcast's last agent (%s) not faster than plain HTTP's (%s)", last, cl)
	}
	if eg := float64(curl.OriginEgress) / size; eg < float64(len(curl.Hosts))*0.95 {
		t.Errorf("curl: origin egress %.2f x S, want about %d x: the baseline is not measuring what it should", eg, len(curl.Hosts))
	}
	if eg := float64(aria.OriginEgress) / size; eg > float64(len(aria.Hosts)) {
		t.Errorf("aria2: origin egress %.2f x S: more than every host fetching from the origin", eg)
	}
	if d := runs["fleetcast/delta"]; d.Changed == 0 || float64(d.OriginEgress) > 8*float64(d.Changed) {
		t.Errorf("delta: origin sent %d bytes for a change of %d, want at most 8x", d.OriginEgress, d.Changed)
	}
	if !strings.Contains(strings.Join(runs["fleetcast/hostile"].Notes, "\n"), "banned by") ||
		strings.Contains(strings.Join(runs["fleetcast/hostile"].Notes, "\n"), "banned by 0 of") {
		t.Errorf("hostile: no agent banned the hostile peer: %q", runs["fleetcast/hostile"].Notes)
	}
	late := runs["fleetcast/late"]
	for _, h := range late.Hosts[len(late.Hosts)-1:] {
		if h.OriginBytes != 0 {
			t.Errorf("late joiner %s fetched %d chunk bytes from the origin, want every chunk from peers", h.Host, h.OriginBytes)
		}
	}
}

func labRequire(t *testing.T) {
	t.Helper()
	err := netlab.Available()
	if err == nil {
		return
	}
	if os.Getenv("FLEETCAST_REQUIRE_NETNS") == "1" {
		t.Fatalf("%v, and FLEETCAST_REQUIRE_NETNS=1 requires network namespaces", err)
	}
	t.Skipf("%v (run as root, or set FLEETCAST_REQUIRE_NETNS=1 to make this a failure)", err)
}

// TestLabScale runs the real fleetlab -mode scale on 4 agents with a short
// idle window, and checks that the probe measured what it must: every
// agent installed, each holds connections, the LAN carried mDNS, the agents
// used some CPU and memory. It checks no cost goal.
func TestLabScale(t *testing.T) {
	labRequire(t)
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "fleetlab"), ".").CombinedOutput(); err != nil {
		t.Fatalf("build fleetlab: %v\n%s", err, out)
	}
	if _, err := findBinary(t.Context(), "", bin, "cmd/fleetcast"); err != nil {
		t.Fatal(err)
	}
	const n, idle = 4, 8 * time.Second
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), filepath.Join(bin, "fleetlab"), "-mode", "scale", "-n", strconv.Itoa(n),
		"-idle", idle.String(), "-timeout", "5m", "-json", "-out", out, "-fleetcast", filepath.Join(bin, "fleetcast"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("fleetlab -mode scale: %v\n%s", err, stderr.String())
	}
	var rep scaleReport
	if err := json.Unmarshal(stdout, &rep); err != nil {
		t.Fatalf("fleetlab -mode scale -json: %v\n%s", err, stdout)
	}
	md, err := os.ReadFile(filepath.Join(out, "scale.md"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fleetlab's table:\n%s", md)
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1 (N=%d)", len(rep.Runs), n)
	}
	checkScale(t, rep.Runs[0], n, idle)
}

// checkScale wants the probe's figures to be there and sane.
func checkScale(t *testing.T, r scaleResult, n int, idle time.Duration) {
	t.Helper()
	if r.Installed != n || len(r.Problems) > 0 {
		t.Errorf("%d of %d agents installed; problems: %s", r.Installed, n, strings.Join(r.Problems, "; "))
	}
	if r.Window < idle || r.Window > idle+idle/2 {
		t.Errorf("idle window measured %s, want about %s", r.Window, idle)
	}
	if len(r.Agents) != n {
		t.Fatalf("figures of %d agents, want %d", len(r.Agents), n)
	}
	for _, a := range r.Agents {
		if a.ConnsMin < 1 || a.Follows < 1 || a.RSS < 1<<20 || a.CPU < 0 {
			t.Errorf("agent %s: %d to %d established connections, follows %d, RSS %d bytes, CPU %s: want at least one connection and one peer, 1 MiB, CPU >= 0",
				a.Host, a.ConnsMin, a.ConnsMax, a.Follows, a.RSS, a.CPU)
		}
	}
	// An idle agent may spend less than a clock tick and send no mDNS in a
	// short window (its browses back off): the counters are checked on
	// the whole run, whose start has every agent browsing.
	if s := r.stats(); s.cpu < 0 {
		t.Errorf("agents' CPU while idle %.4f cores", s.cpu)
	}
	if r.MDNSPackets < 0 || r.MDNSPacketsRun <= 0 || r.MDNSPackets > r.MDNSPacketsRun {
		t.Errorf("mDNS packets: %d in the window, %d in the run: the counter saw none, or more in the window than in all",
			r.MDNSPackets, r.MDNSPacketsRun)
	}
	if r.LANBytes <= 0 {
		t.Errorf("%d bytes on the LAN in %s: the agents poll the origin and each other, want some", r.LANBytes, r.Window)
	}
	if r.MachineCPU <= 0 || r.MachineCPU > 1 {
		t.Errorf("machine CPU %.3f, want a fraction in (0, 1]", r.MachineCPU)
	}
}
