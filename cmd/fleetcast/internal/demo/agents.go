package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/fleetcast/fleetcast/agent/config"
	"github.com/fleetcast/fleetcast/manifest"
)

// stopTimeout is how long a stopping agent may take before it is killed.
const stopTimeout = 15 * time.Second

// agent is one `fleetcast agent` child process.
type agent struct {
	name, dir, addr string
	cmd             *exec.Cmd
	log             *os.File
	done            chan struct{} // closed when the process has exited
	waitErr         error         // set before done is closed
}

// agentConfig is the agent configuration the demo writes (docs/CONFIG.md).
type agentConfig struct {
	DataDir           string         `toml:"data_dir"`
	Origin            string         `toml:"origin"`
	Root              string         `toml:"root"`
	Listen            string         `toml:"listen"`
	PollInterval      string         `toml:"poll_interval"`
	MinThroughput     int            `toml:"min_throughput"`
	AllowedInstallers []string       `toml:"allowed_installers"`
	MDNS              bool           `toml:"mdns"`
	Peers             []string       `toml:"peers"`
	BrowseInterval    string         `toml:"browse_interval"`
	FleetSecretFile   string         `toml:"fleet_secret_file"`
	Subscription      []subscription `toml:"subscription"`
}

type subscription struct {
	Product string `toml:"product"`
	Channel string `toml:"channel"`
}

const configHeader = `# fleetcast demo agent (docs/CONFIG.md). Written by "fleetcast demo":
# poll every second, static peers on loopback, no mDNS. min_throughput is 0
# because the demo origin's rate is shared by every agent's connections.
# "command" is allowed because the demo installs by copying the artifact
# into this agent's own directory: one manifest cannot name a different
# file target for each agent on the same machine.

`

// copyInstall copies the artifact into the agent's working directory.
func copyInstall() manifest.Install {
	cmd := []string{"cp", "{artifact}", artifactName}
	if runtime.GOOS == "windows" {
		cmd = []string{"cmd", "/c", "copy", "/y", "{artifact}", artifactName}
	}
	return manifest.Install{Installer: manifest.InstallerCommand, Command: cmd}
}

// startAgents writes every agent's configuration and starts the agents.
func (d *demo) startAgents(ctx context.Context) error {
	addrs, err := freeAddrs(d.opts.Agents)
	if err != nil {
		return err
	}
	fmt.Fprintln(d.out, peerNote())
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to start agents: %w", err)
	}
	for i, addr := range addrs {
		a := &agent{name: fmt.Sprintf("agent%d", i+1), dir: d.path(fmt.Sprintf("agent%d", i+1)), addr: addr}
		if err := d.writeAgentConfig(a, addrs); err != nil {
			return err
		}
		if err := a.start(self); err != nil {
			return err
		}
		d.agents = append(d.agents, a)
	}
	fmt.Fprintf(d.out, "started %d agents (%s): %s\n", len(d.agents), self, strings.Join(addrs, ", "))
	return nil
}

// writeAgentConfig writes a's configuration and checks that the agent
// accepts it.
func (d *demo) writeAgentConfig(a *agent, addrs []string) error {
	var peers []string
	for _, p := range addrs {
		if p != a.addr {
			peers = append(peers, p)
		}
	}
	cfg := agentConfig{DataDir: "data", Origin: d.origin.url, Root: d.path("root.json"), Listen: a.addr,
		PollInterval: "1s", AllowedInstallers: []string{manifest.InstallerCommand}, Peers: peers, BrowseInterval: "500ms",
		FleetSecretFile: d.path("fleet.secret"), Subscription: []subscription{{product, channel}}}
	var buf bytes.Buffer
	buf.WriteString(configHeader)
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return fmt.Errorf("%s configuration: %w", a.name, err)
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return err
	}
	p := a.configPath()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if _, err := config.Load(p); err != nil {
		return fmt.Errorf("%s configuration: %w", a.name, err)
	}
	return nil
}

func (a *agent) configPath() string { return filepath.Join(a.dir, "agent.toml") }

func (a *agent) start(self string) error {
	f, err := os.Create(filepath.Join(a.dir, "agent.log"))
	if err != nil {
		return err
	}
	a.log, a.done = f, make(chan struct{})
	a.cmd = exec.Command(self, "agent", "--config", a.configPath())
	a.cmd.Dir, a.cmd.Stdout, a.cmd.Stderr = a.dir, f, f
	if err := a.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", a.name, err)
	}
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.done)
	}()
	return nil
}

// exited reports whether the agent's process has ended, and how.
func (a *agent) exited() (bool, error) {
	select {
	case <-a.done:
		if a.waitErr == nil {
			return true, errors.New("exited with status 0")
		}
		return true, a.waitErr
	default:
		return false, nil
	}
}

// stop asks the agent to stop (SIGTERM; a kill where there is no such
// signal) and waits for it, killing it after stopTimeout.
func (a *agent) stop() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.cmd.Process.Kill()
	}
	select {
	case <-a.done:
	case <-time.After(stopTimeout):
		a.cmd.Process.Kill()
		<-a.done
	}
	a.log.Close()
}

// stopAgents stops every agent at once and waits for all.
func (d *demo) stopAgents() {
	done := make(chan struct{})
	for _, a := range d.agents {
		go func() { a.stop(); done <- struct{}{} }()
	}
	for range d.agents {
		<-done
	}
	fmt.Fprintf(d.out, "stopped %d agents\n", len(d.agents))
}

// freeAddrs returns n distinct free 127.0.0.1 ports, holding them
// all open until each is known so that none is returned twice.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// peerNote says how the agents find each other, and why. The demo
// never turns mDNS on: it would send beyond loopback unless loopback has
// multicast, and even then the agent advertises only non-loopback
// addresses, so agents listening on 127.0.0.1 cannot be found that way.
func peerNote() string {
	name, multicast := loopbackMulticast()
	if !multicast {
		return "mDNS: loopback has no multicast here; agents use a static peer list instead (each lists the others)"
	}
	return fmt.Sprintf("mDNS: loopback (%s) has multicast, but agents advertise only non-loopback addresses, "+
		"so mDNS cannot find agents on 127.0.0.1; agents use a static peer list instead (each lists the others)", name)
}

// loopbackMulticast returns the loopback interface's name and whether it
// has the MULTICAST flag.
func loopbackMulticast() (string, bool) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", false
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback != 0 && ifc.Flags&net.FlagUp != 0 {
			return ifc.Name, ifc.Flags&net.FlagMulticast != 0
		}
	}
	return "", false
}
