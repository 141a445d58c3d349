package main

import (
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"

	"github.com/hashicorp/mdns"

	"github.com/fleetcast/fleetcast/agent/peerproto"
)

// mdnsService is the DNS-SD service type fleetcast agents advertise.
const mdnsService = "_fleetcast._tcp"

// advertise answers mDNS queries for _fleetcast._tcp as agent id of fleet
// fleetID at ip:port, on the interface that holds ip, until stop is called.
func advertise(id, fleetID string, ip net.IP, port int, logger *slog.Logger) (stop func() error, err error) {
	txt := []string{"id=" + id, "fleet=" + fleetID, "proto=" + peerproto.Proto, "port=" + strconv.Itoa(port)}
	svc, err := mdns.NewMDNSService(id, mdnsService, "local.", id+".local.", port, []net.IP{ip}, txt)
	if err != nil {
		return nil, fmt.Errorf("mdns service: %w", err)
	}
	iface, err := interfaceWith(ip)
	if err != nil {
		return nil, err
	}
	srv, err := mdns.NewServer(&mdns.Config{Zone: svc, Iface: iface,
		Logger: log.New(slogWriter{logger}, "", 0)})
	if err != nil {
		return nil, fmt.Errorf("mdns responder on %s: %w", iface.Name, err)
	}
	logger.Info("advertising over mDNS", slog.String("interface", iface.Name), slog.String("agent", id))
	return srv.Shutdown, nil
}

// interfaceWith returns the interface that has address ip.
func interfaceWith(ip net.IP) (*net.Interface, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifaces {
		addrs, err := ifaces[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return &ifaces[i], nil
			}
		}
	}
	return nil, fmt.Errorf("no interface has address %s", ip)
}

// slogWriter turns the mdns package's log lines into debug records.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("mdns", slog.String("line", string(p)))
	return len(p), nil
}
