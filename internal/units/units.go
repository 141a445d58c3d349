// Package units parses and formats byte counts the way every fleetcast
// command shows them: binary (IEC) units, "24MiB" on the command line and
// "24.0 MiB" in output; and link rates in bits per second, as the lab and
// the simulator take them ("40Mbit").
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxBytes bounds what ParseBytes accepts: 1 TiB.
const MaxBytes = 1 << 40

// ParseBytes reads a positive whole number of bytes, optionally with a KiB,
// MiB or GiB suffix: "8388608", "512KiB", "24MiB", "1GiB".
func ParseBytes(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > MaxBytes/mult {
		return 0, fmt.Errorf("size %q: want a positive whole number of bytes, KiB, MiB or GiB (e.g. 24MiB), at most 1 TiB", s)
	}
	return n * mult, nil
}

// FormatBytes formats n in binary units: "0 B", "1023 B", "32.0 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseBitRate reads a link rate in bits per second, optionally with a Kbit,
// Mbit or Gbit (decimal) suffix: "40Mbit", "1Gbit", "500Kbit", "8000"; from
// 8 Kbit/s to 100 Gbit/s.
func ParseBitRate(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mul    int64
	}{{"Gbit", 1e9}, {"Mbit", 1e6}, {"Kbit", 1e3}, {"", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n <= 0 || n*u.mul < 8000 || n > 100e9/u.mul {
				return 0, fmt.Errorf("rate %q: want bits per second with Kbit, Mbit or Gbit, from 8Kbit to 100Gbit", s)
			}
			return n * u.mul, nil
		}
	}
	panic("unreachable") // the last suffix, "", matches every string
}
