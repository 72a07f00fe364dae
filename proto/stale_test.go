// Package proto_test checks that the committed generated code matches the
// .proto files.
package proto_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not installed (apt-get install protobuf-compiler); .ci/run installs it")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "../scripts/genproto.sh")
	cmd.Env = append(os.Environ(), "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("genproto.sh: %v\n%s", err, b)
	}
	fresh, err := filepath.Glob(filepath.Join(out, "bwx/v1/*.go"))
	if err != nil || len(fresh) == 0 {
		t.Fatalf("genproto.sh generated nothing in %s", out)
	}
	committed, _ := filepath.Glob("bwx/v1/*.pb.go")
	if len(committed) != len(fresh) {
		t.Errorf("committed %d generated files, fresh run made %d: run scripts/genproto.sh", len(committed), len(fresh))
	}
	for _, f := range fresh {
		name := filepath.Base(f)
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join("bwx/v1", name))
		if err != nil {
			t.Errorf("%s is not committed: run scripts/genproto.sh", name)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("proto/bwx/v1/%s is stale: run scripts/genproto.sh and commit the result", name)
		}
	}
}
