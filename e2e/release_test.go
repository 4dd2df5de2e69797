package e2e

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestVersionPrintsTheStampedBuild builds openqps as scripts/release.sh
// does, with the version and commit set through -ldflags -X, and checks
// what openqps version prints.
func TestVersionPrintsTheStampedBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the openqps binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "openqps")
	pkg := "github.com/openqps/openqps/internal/version"
	build := exec.Command("go", "build", "-ldflags", "-X "+pkg+".version=v7.8.9-test -X "+pkg+".commit=0123abcd", "-o", bin, "../cmd/openqps")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("openqps version: %v\n%s", err, out)
	}
	want := "openqps v7.8.9-test\ncommit 0123abcd\n" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if string(out) != want {
		t.Fatalf("openqps version printed\n%s\nwant\n%s", out, want)
	}
}
