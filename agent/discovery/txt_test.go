package discovery

import (
	"reflect"
	"strings"
	"testing"
)

const (
	idA    = "0123456789abcdef"
	idB    = "fedcba9876543210"
	idC    = "00000000000000cc"
	fleetX = "1111111111111111"
	fleetY = "2222222222222222"
)

func TestParseTXT(t *testing.T) {
	valid := []string{"id=" + idA, "fleet=" + fleetX, "proto=fleetcast-peer/1", "port=7331"}
	want := txtInfo{ID: idA, FleetID: fleetX, Proto: "fleetcast-peer/1", Port: 7331}
	with := func(extra ...string) []string { return append(append([]string{}, valid...), extra...) }
	replace := func(i int, s string) []string { f := with(); f[i] = s; return f }
	many := make([]string, 13)
	tests := []struct {
		name   string
		fields []string
		want   txtInfo
		err    string
	}{
		{"valid", valid, want, ""},
		{"open fleet", replace(1, "fleet=open"), txtInfo{ID: idA, FleetID: "open", Proto: "fleetcast-peer/1", Port: 7331}, ""},
		{"unknown keys ignored", with("color=blue", "novalue"), want, ""},
		{"max port", replace(3, "port=65535"), txtInfo{ID: idA, FleetID: fleetX, Proto: "fleetcast-peer/1", Port: 65535}, ""},
		{"16 strings", with(many[:12]...), want, ""},
		{"17 strings", with(many...), txtInfo{}, "17 strings"},
		{"long string", with("x=" + strings.Repeat("a", 254)), txtInfo{}, "256 bytes"},
		{"missing id", valid[1:], txtInfo{}, "missing id"},
		{"missing fleet", []string{valid[0], valid[2], valid[3]}, txtInfo{}, "missing fleet"},
		{"missing proto", []string{valid[0], valid[1], valid[3]}, txtInfo{}, "missing proto"},
		{"missing port", valid[:3], txtInfo{}, "missing port"},
		{"uppercase id", replace(0, "id=0123456789ABCDEF"), txtInfo{}, "agent id"},
		{"short id", replace(0, "id=0123"), txtInfo{}, "agent id"},
		{"open is no agent id", replace(0, "id=open"), txtInfo{}, "agent id"},
		{"bad fleet", replace(1, "fleet=closed"), txtInfo{}, "fleet id"},
		{"port 0", replace(3, "port=0"), txtInfo{}, "port"},
		{"port 65536", replace(3, "port=65536"), txtInfo{}, "port"},
		{"port sign", replace(3, "port=+80"), txtInfo{}, "port"},
		{"port leading zero", replace(3, "port=080"), txtInfo{}, "port"},
		{"port not a number", replace(3, "port=http"), txtInfo{}, "port"},
		{"proto with space", replace(2, "proto=a b"), txtInfo{}, "printable"},
		{"proto empty", replace(2, "proto="), txtInfo{}, "proto of 0 bytes"},
		{"repeated id", with("id=" + idB), txtInfo{}, "repeated"},
		{"nil", nil, txtInfo{}, "missing id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTXT(tt.fields)
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("parseTXT = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("parseTXT error = %v; want one containing %q", err, tt.err)
			}
		})
	}
}

// FuzzParseTXT feeds TXT strings separated by newlines. Whatever parses must
// be valid and survive a round trip through formatTXT.
func FuzzParseTXT(f *testing.F) {
	f.Add("id=0123456789abcdef\nfleet=open\nproto=fleetcast-peer/1\nport=7331")
	f.Add("port=1\nproto=x\nfleet=1111111111111111\nid=fedcba9876543210\nextra=1")
	f.Add("id=0123456789abcdef\nid=0123456789abcdef")
	f.Fuzz(func(t *testing.T, joined string) {
		fields := strings.Split(joined, "\n")
		info, err := parseTXT(fields)
		if err != nil {
			return
		}
		if checkAgentID(info.ID) != nil || checkFleetID(info.FleetID) != nil ||
			checkProto(info.Proto) != nil || info.Port < 1 || info.Port > 65535 {
			t.Fatalf("parseTXT(%q) accepted invalid %+v", fields, info)
		}
		again, err := parseTXT(formatTXT(info))
		if err != nil || !reflect.DeepEqual(again, info) {
			t.Fatalf("round trip of %+v = %+v, %v", info, again, err)
		}
	})
}
