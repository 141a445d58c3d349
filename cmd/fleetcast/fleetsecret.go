package main

import (
	"fmt"

	"github.com/fleetcast/fleetcast/agent/fleettls"
)

func cmdFleetSecret(args []string, env *cliEnv) error {
	fs := newFlagSet("fleet-secret", "fleetcast fleet-secret FILE\n\n"+
		"Creates FILE (mode 0600) holding a new random fleet secret; refuses to overwrite one.\n"+
		"Agents whose fleet_secret_file holds the same secret see each other and exchange\n"+
		"chunks over mutually authenticated TLS; other hosts can neither fetch nor serve.\n\n"+
		"Example: fleetcast fleet-secret fleet.secret  (then copy fleet.secret to every agent, mode 0600)", env.stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one argument: the secret FILE to create")
	}
	path := fs.Arg(0)
	if err := fleettls.NewSecret(path); err != nil {
		return err
	}
	fleet, err := fleettls.Load(path)
	if err != nil {
		return fmt.Errorf("wrote %s but cannot load it: %w", path, err)
	}
	fmt.Fprintf(env.stdout, "fleet id %s; give %s to every agent of the fleet (fleet_secret_file), mode 0600\n", fleet.ID(), path)
	return nil
}
