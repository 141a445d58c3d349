package discovery

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/mdns"
)

// maxQueryTimeout bounds how long one browse listens for answers; Run waits
// for a browse in progress before it returns.
const maxQueryTimeout = 2 * time.Second

// mdnsState is the mDNS side of Run; only the one browse goroutine at a
// time touches it.
type mdnsState struct {
	server  *mdns.Server
	watcher *queryWatcher // nil when it could not start: peers are then kept live by answers only
	ips     string        // the advertised addresses, to notice when they change
	warned  bool          // the one warning about unavailable multicast was logged
	failing bool          // the last browse failed
	quick   bool          // a quick browse at start: a short query timeout
}

// browse makes sure we advertise, then queries once and records the answers.
// Failures are logged once at warn level and then at debug level.
func (d *Discovery) browse(ctx context.Context) {
	iface, err := d.iface()
	if err == nil {
		err = joinErrs(d.advertise(iface), d.query(ctx, iface))
	}
	if ctx.Err() != nil {
		return
	}
	d.reportMDNS(err)
}

func (d *Discovery) reportMDNS(err error) {
	st := &d.mdnsState
	switch {
	case err != nil && !st.warned:
		d.log.Warn("mDNS unavailable; using static and remembered peers only, retrying quietly",
			slog.String("interface", d.cfg.Interface), slog.String("reason", err.Error()))
		st.warned, st.failing = true, true
	case err != nil:
		d.log.Debug("mDNS still unavailable", slog.String("reason", err.Error()))
		st.failing = true
	case st.failing:
		d.log.Info("mDNS available", slog.String("interface", d.cfg.Interface))
		st.failing = false
	}
}

// joinErrs joins the non-nil errors on one line, for a log attribute.
func joinErrs(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// iface returns the configured interface or, without one, the interface
// the OS routes mDNS multicast through; nil (let the OS choose) when it
// cannot tell. Advertising every interface's addresses would give peers
// addresses they cannot reach (a container bridge, a VPN): the hashicorp
// client keeps one address per answer.
func (d *Discovery) iface() (*net.Interface, error) {
	if d.cfg.Interface == "" {
		return multicastIface(), nil
	}
	ifc, err := net.InterfaceByName(d.cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("mdns interface %q: %w", d.cfg.Interface, err)
	}
	return ifc, nil
}

// mdnsGroup is the IPv4 mDNS group and port (RFC 6762).
var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

// multicastIface finds the interface of the route to the mDNS group: a UDP
// "connection" picks the source address without sending anything.
func multicastIface() *net.Interface {
	c, err := net.DialUDP("udp4", nil, mdnsGroup)
	if err != nil {
		return nil
	}
	local := c.LocalAddr().(*net.UDPAddr).IP
	c.Close()
	all, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for _, ifc := range all {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(local) && ifc.Flags&net.FlagMulticast != 0 {
				return &ifc
			}
		}
	}
	return nil
}

// advertise starts the mDNS responder, or restarts it when our addresses
// changed.
func (d *Discovery) advertise(iface *net.Interface) error {
	st := &d.mdnsState
	ips, err := advertiseIPs(iface)
	if err != nil {
		d.stopServer()
		return err
	}
	key := fmt.Sprint(ips)
	if st.server != nil && key == st.ips {
		return nil
	}
	d.stopServer()
	self := txtInfo{ID: d.self.AgentID, FleetID: d.self.FleetID, Proto: d.self.Proto, Port: d.self.Port}
	svc, err := mdns.NewMDNSService(d.self.AgentID, Service, "local.", d.self.AgentID+".local.",
		d.self.Port, ips, formatTXT(self))
	if err != nil {
		return fmt.Errorf("mdns service: %w", err)
	}
	zone := &answerZone{zone: svc, now: d.now, answer: d.answerBrowse}
	srv, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: iface, Logger: d.mdnsLogger()})
	if err != nil {
		return fmt.Errorf("mdns responder: %w", err)
	}
	st.server, st.ips = srv, key
	if st.watcher, err = watchQueries(iface, d.heardQuery); err != nil {
		d.log.Debug("not watching mDNS queries; peers are kept live by answers only", slog.String("reason", err.Error()))
	}
	d.log.Debug("mDNS responder started", slog.String("addresses", key))
	return nil
}

func (d *Discovery) stopServer() {
	st := &d.mdnsState
	if st.server != nil {
		st.server.Shutdown()
		st.server, st.ips = nil, ""
	}
	if st.watcher != nil {
		st.watcher.stop()
		st.watcher = nil
	}
}

// advertiseIPs returns the addresses of iface, or of all up, multicast,
// non-loopback interfaces when iface is nil.
func advertiseIPs(iface *net.Interface) ([]net.IP, error) {
	ifaces := []net.Interface{}
	if iface != nil {
		ifaces = append(ifaces, *iface)
	} else {
		all, err := net.Interfaces()
		if err != nil {
			return nil, fmt.Errorf("list interfaces: %w", err)
		}
		for _, ifc := range all {
			if ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagMulticast != 0 && ifc.Flags&net.FlagLoopback == 0 {
				ifaces = append(ifaces, ifc)
			}
		}
	}
	var ips []net.IP
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsUnspecified() {
				ips = append(ips, n.IP)
			}
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("no up multicast interface has an address to advertise")
	}
	slices.SortFunc(ips, func(a, b net.IP) int { return strings.Compare(a.String(), b.String()) })
	return ips, nil
}

// query browses once, dual-stack and then, if that fails (IPv6 disabled or
// without a route), IPv4 only.
func (d *Discovery) query(ctx context.Context, iface *net.Interface) error {
	err := d.queryOnce(ctx, iface, false)
	if err == nil || ctx.Err() != nil {
		return nil
	}
	if err4 := d.queryOnce(ctx, iface, true); err4 != nil {
		return fmt.Errorf("mdns query: %w (IPv4 only: %v)", err, err4)
	}
	d.log.Debug("mDNS query works over IPv4 only", slog.String("ipv6_error", err.Error()))
	return nil
}

// queryOnce runs one mdns.QueryContext. It blocks for its timeout, sends
// entries without blocking (dropping them when the channel is full), never
// closes the channel, and keeps writing to an entry after sending it when
// more records arrive; so the entries are read only after it returns, from a
// channel large enough for one answer per peer.
func (d *Discovery) queryOnce(ctx context.Context, iface *net.Interface, v4only bool) error {
	entries := make(chan *mdns.ServiceEntry, 2*maxPeers)
	err := mdns.QueryContext(ctx, &mdns.QueryParam{
		Service: Service, Domain: "local", Timeout: d.queryTimeout(),
		Interface: iface, Entries: entries, DisableIPv6: v4only, Logger: d.mdnsLogger(),
	})
	close(entries)
	answers := 0
	for e := range entries {
		if d.handleEntry(e) {
			answers++
		}
	}
	if err == nil {
		d.log.Debug("mDNS browse", slog.Int("answers", answers), slog.Int("known", d.known()))
	}
	return err
}

func (d *Discovery) queryTimeout() time.Duration {
	if d.mdnsState.quick {
		return min(quickQueryTimeout, max(d.cfg.BrowseInterval/2, 100*time.Millisecond))
	}
	return min(max(d.cfg.BrowseInterval/2, 100*time.Millisecond), maxQueryTimeout)
}

// mdnsLogger routes the library's std log output to slog at debug level.
func (d *Discovery) mdnsLogger() *log.Logger {
	return slog.NewLogLogger(d.log.With(slog.String("component", "mdns")).Handler(), slog.LevelDebug)
}

// handleEntry records a valid answer from another agent, and tells whether
// it did. The client reports an instance once per query and also hears
// answers meant for other services.
func (d *Discovery) handleEntry(e *mdns.ServiceEntry) bool {
	info, err := parseTXT(e.InfoFields)
	if err != nil {
		d.log.Debug("ignoring mDNS entry", slog.String("name", e.Name), slog.String("reason", err.Error()))
		return false
	}
	if !strings.EqualFold(e.Name, info.ID+"."+Service+".local.") || info.ID == d.self.AgentID {
		return false
	}
	if e.Port != info.Port {
		d.log.Debug("ignoring mDNS entry: SRV and TXT ports differ", slog.String("name", e.Name))
		return false
	}
	addr, ok := entryAddr(e, d.cfg.Interface)
	if !ok {
		d.log.Debug("ignoring mDNS entry without a usable address", slog.String("name", e.Name))
		return false
	}
	d.seenMDNS(addr, info)
	return true
}

// entryAddr returns host:port of e, preferring IPv4. A link-local IPv6
// address needs a zone, so it is used only when Config.Interface names one.
func entryAddr(e *mdns.ServiceEntry, zone string) (string, bool) {
	port := strconv.Itoa(e.Port)
	if ip, ok := netip.AddrFromSlice(e.AddrV4); ok && ip.Unmap().Is4() {
		return net.JoinHostPort(ip.Unmap().String(), port), true
	}
	ip, ok := netip.AddrFromSlice(e.AddrV6)
	if !ok || ip.Is4In6() || !ip.Is6() || ip.IsUnspecified() {
		return "", false
	}
	if ip.IsLinkLocalUnicast() {
		if zone == "" {
			return "", false
		}
		ip = ip.WithZone(zone)
	}
	return net.JoinHostPort(ip.String(), port), true
}
