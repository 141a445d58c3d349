package benchrun

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fleetcast/fleetcast/tools/internal/product"
)

// Fleetcast returns the fleetcast binary a bench runs: bin, the bench's
// -fleetcast flag, when given, else one it builds from this checkout's
// cmd/fleetcast into dir.
func Fleetcast(ctx context.Context, bin, dir string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	bin = filepath.Join(dir, "fleetcast")
	if err := product.Build(ctx, "cmd/fleetcast", bin); err != nil {
		return "", fmt.Errorf("%w (run from the repository, or pass -fleetcast)", err)
	}
	return bin, nil
}
