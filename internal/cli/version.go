package cli

import (
	"runtime/debug"
	"strings"
)

// Version is this build's version for --version, from the build information
// the Go toolchain records in the binary: the module version ("(devel)" for a
// build from a checkout), then, when recorded, the VCS revision (12 digits,
// "-modified" when the tree had uncommitted changes) and its commit time, and
// the Go version. It is "unknown" in a binary without build information.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return versionOf(info)
}

func versionOf(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var parts []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified {
			rev += "-modified"
		}
		parts = append(parts, "revision "+rev)
	}
	if at != "" {
		parts = append(parts, "committed "+at)
	}
	if info.GoVersion != "" {
		parts = append(parts, info.GoVersion)
	}
	if len(parts) == 0 {
		return v
	}
	return v + " (" + strings.Join(parts, ", ") + ")"
}
