package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// configEnv names the environment variable with the default of --config.
const configEnv = "FHESERVE_CONFIG"

const configHelp = `Every flag can also come from the environment, FHESERVE_ and the flag's
name in capitals with underscores (FHESERVE_MAX_UPLOADS=8; --data-dir is
$FHESERVE_DATA), or from the file --config FILE (or $FHESERVE_CONFIG):
one "name = value" a line, the flag's name without dashes, # starts a
comment line (deploy/fheserve.conf is an example). A flag on the command
line wins over the environment, which wins over the file.`

// configFlag adds --config, defaulting to $FHESERVE_CONFIG.
func configFlag(fs *pflag.FlagSet, getenv func(string) string, p *string) {
	fs.StringVar(p, "config", getenv(configEnv), "read flags from this `file` of 'name = value' lines (default: $"+configEnv+"); the command line and the environment win over it")
}

// flagEnv is the environment variable that sets the flag name.
func flagEnv(name string) string {
	if name == "data-dir" {
		return dataDirEnv
	}
	return "FHESERVE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// configured sets each flag that the command line did not give from its
// environment variable (flagEnv), else from the config file at *path if
// one is named; it runs before the other checks.
func configured(getenv func(string) string, path *string) check {
	return func(cmd *cobra.Command, _ []string) error {
		fs := cmd.Flags()
		var file map[string]string
		if *path != "" {
			var err error
			if file, err = readConfig(*path, fs); err != nil {
				return err
			}
		}
		var err error
		fs.VisitAll(func(f *pflag.Flag) {
			if err != nil || f.Changed || f.Name == "config" || f.Name == "help" {
				return
			}
			from, v := "$"+flagEnv(f.Name), getenv(flagEnv(f.Name))
			if v == "" {
				var ok bool
				if v, ok = file[f.Name]; !ok {
					return
				}
				from = *path
			}
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fheserve.Errorf(fheserve.EINVALID, "%s: invalid %s: %v", from, f.Name, serr)
			}
		})
		return err
	}
}

// readConfig reads a config file of "name = value" lines whose names are
// flags of fs.
func readConfig(path string, fs *pflag.FlagSet) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot read the config file: %v", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), unquote(strings.TrimSpace(value))
		bad := func(format string, args ...any) error {
			return fheserve.Errorf(fheserve.EINVALID, "%s:%d: %s", path, n, fmt.Sprintf(format, args...))
		}
		switch _, dup := m[name]; {
		case !ok:
			return nil, bad("want 'name = value'")
		case fs.Lookup(name) == nil || name == "config" || name == "help":
			return nil, bad("unknown setting %q (the names are the flags', without dashes)", name)
		case dup:
			return nil, bad("%s is set twice", name)
		}
		m[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot read the config file: %v", err)
	}
	return m, nil
}

// unquote drops one pair of double or single quotes around v.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}
