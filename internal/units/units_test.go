package units

import "testing"

func TestParseBytes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64 // 0: an error
	}{
		{"1", 1}, {"8388608", 8 << 20}, {"512KiB", 512 << 10}, {"24MiB", 24 << 20}, {"1GiB", 1 << 30},
		{"1024GiB", 1 << 40}, {"1025GiB", 0}, {"0", 0}, {"-1MiB", 0}, {"MiB", 0}, {"1.5MiB", 0},
		{"24 MiB", 0}, {"24mib", 0}, {"", 0}, {"99999999999999999999", 0},
	} {
		got, err := ParseBytes(tt.in)
		if got != tt.want || (err != nil) != (tt.want == 0) {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 33_600_000: "32.0 MiB", 1 << 40: "1.0 TiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseBitRate(t *testing.T) {
	for in, want := range map[string]int64{"40Mbit": 40e6, "1Gbit": 1e9, "500Kbit": 500e3, "8000": 8000,
		"0Mbit": 0, "7999": 0, "40mbit": 0, "": 0, "101Gbit": 0, "-1Mbit": 0} {
		got, err := ParseBitRate(in)
		if got != want || (err != nil) != (want == 0) {
			t.Errorf("ParseBitRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
