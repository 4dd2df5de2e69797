// Package version says which build of openqps is running. Release builds
// set the version and commit with the linker:
//
//	go build -ldflags "-X github.com/openqps/openqps/internal/version.version=v1.2.3 \
//	  -X github.com/openqps/openqps/internal/version.commit=$(git rev-parse HEAD)"
//
// Without them, the commit comes from the Go toolchain's build
// information (set when building inside a git checkout) and the
// version is "dev".
package version

import (
	"runtime"
	"runtime/debug"
)

// Set by -ldflags -X; see the package comment.
var (
	version string
	commit  string
)

// Info is what openqps version prints.
type Info struct {
	Version  string // e.g. v1.2.3; "dev" for builds without -ldflags
	Commit   string // the git commit, with "-dirty" when the tree had changes; "unknown" when neither source says
	Go       string // the Go toolchain, e.g. go1.26.8
	Platform string // GOOS/GOARCH
}

// Get returns the running build's Info.
func Get() Info {
	i := Info{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" {
		i.Commit = buildCommit()
	}
	return i
}

// buildCommit is the vcs.revision the go command stamped into the
// binary, or "unknown".
func buildCommit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev + dirty
}
