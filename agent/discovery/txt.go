package discovery

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TXT record bounds (RFC 6763 limits a string to 255 bytes; we accept few).
const (
	maxTXTStrings   = 16
	maxTXTStringLen = 255
	maxProtoLen     = 64
)

// OpenFleet is the fleet id of a fleet without a secret.
const OpenFleet = "open"

// txtInfo is what an agent advertises in its TXT record:
//
//	id=<16 lowercase hex>  fleet=<16 lowercase hex or "open">
//	proto=<printable ASCII, no spaces, 1..64 bytes>  port=<1..65535>
//
// Unknown keys are ignored so that later versions can add some; a record
// with a missing, malformed or repeated known key is rejected whole.
type txtInfo struct {
	ID      string
	FleetID string
	Proto   string
	Port    int
}

// formatTXT returns the TXT strings that advertise info.
func formatTXT(info txtInfo) []string {
	return []string{
		"id=" + info.ID,
		"fleet=" + info.FleetID,
		"proto=" + info.Proto,
		"port=" + strconv.Itoa(info.Port),
	}
}

// parseTXT parses and validates the TXT strings of an mDNS entry.
func parseTXT(fields []string) (txtInfo, error) {
	if len(fields) > maxTXTStrings {
		return txtInfo{}, fmt.Errorf("parse txt: %d strings, at most %d allowed", len(fields), maxTXTStrings)
	}
	var info txtInfo
	seen := map[string]bool{}
	for _, f := range fields {
		if len(f) > maxTXTStringLen {
			return txtInfo{}, fmt.Errorf("parse txt: string of %d bytes, at most %d allowed", len(f), maxTXTStringLen)
		}
		key, val, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		if err := setTXTField(&info, key, val); err != nil {
			return txtInfo{}, fmt.Errorf("parse txt: %w", err)
		}
		if isKnownTXTKey(key) && seen[key] {
			return txtInfo{}, fmt.Errorf("parse txt: key %q repeated", key)
		}
		seen[key] = true
	}
	if err := info.complete(); err != nil {
		return txtInfo{}, fmt.Errorf("parse txt: %w", err)
	}
	return info, nil
}

func isKnownTXTKey(key string) bool {
	switch key {
	case "id", "fleet", "proto", "port":
		return true
	}
	return false
}

func setTXTField(info *txtInfo, key, val string) error {
	var err error
	switch key {
	case "id":
		info.ID, err = val, checkAgentID(val)
	case "fleet":
		info.FleetID, err = val, checkFleetID(val)
	case "proto":
		info.Proto, err = val, checkProto(val)
	case "port":
		info.Port, err = parsePort(val)
	}
	return err
}

func (info txtInfo) complete() error {
	switch {
	case info.ID == "":
		return errors.New("missing id")
	case info.FleetID == "":
		return errors.New("missing fleet")
	case info.Proto == "":
		return errors.New("missing proto")
	case info.Port == 0:
		return errors.New("missing port")
	}
	return nil
}

// checkAgentID accepts exactly 16 lowercase hex digits.
func checkAgentID(s string) error {
	if !isHex16(s) {
		return fmt.Errorf("agent id %.40q is not 16 lowercase hex digits", s)
	}
	return nil
}

// checkFleetID accepts 16 lowercase hex digits or "open".
func checkFleetID(s string) error {
	if s != OpenFleet && !isHex16(s) {
		return fmt.Errorf("fleet id %.40q is not 16 lowercase hex digits or %q", s, OpenFleet)
	}
	return nil
}

func checkProto(s string) error {
	if s == "" || len(s) > maxProtoLen {
		return fmt.Errorf("proto of %d bytes, want 1..%d", len(s), maxProtoLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("proto %.40q has a byte that is not printable ASCII", s)
		}
	}
	return nil
}

// parsePort accepts a decimal port 1..65535 without sign or leading zero.
func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, fmt.Errorf("port %.40q is not a number in 1..65535", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("port %.40q is not a number in 1..65535", s)
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return 0, fmt.Errorf("port %d is not in 1..65535", n)
	}
	return n, nil
}

func isHex16(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
