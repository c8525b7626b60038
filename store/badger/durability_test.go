package badger_test

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// crashDirEnv selects the child half of TestCreateSurvivesSIGKILL: the test
// binary re-executed with it set creates tokens in that directory until killed.
const crashDirEnv = "APPTOKENS_TEST_CRASH_DIR"

// TestCrashChild is the child process of TestCreateSurvivesSIGKILL. It reports
// each token on stdout only after Create has returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCreateSurvivesSIGKILL only")
	}
	s, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		name := fmt.Sprintf("crash-%06d", i)
		c, err := s.Create(admin, store.NewToken{Name: name, Description: "durability", Access: []store.Access{store.AccessSecurityDirector}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "create:", err)
			os.Exit(2)
		}
		d := c.Secret.Digest()
		// One write(2) per line, straight to the pipe: no buffering to lose.
		if _, err := fmt.Fprintf(os.Stdout, "created %s %s\n", name, hex.EncodeToString(d[:])); err != nil {
			os.Exit(2)
		}
	}
}

// TestCreateSurvivesSIGKILL: every token whose Create returned is on disk with its
// digest after the process is killed mid-stream and the directory reopened.
func TestCreateSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	for round := range 2 { // the second round crashes a store recovered from a crash
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		reported := map[string]string{}
		sc := bufio.NewScanner(out)
		killAfter := 40 + 17*round
		deadline := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "created" {
				continue
			}
			reported[f[1]] = f[2]
			if len(reported) == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		deadline.Stop()
		// Lines the child wrote before it died are still read to EOF above.
		werr := cmd.Wait()
		if len(reported) < killAfter {
			t.Fatalf("child reported %d tokens before it ended (%v): %s", len(reported), werr, stderr.String())
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die of SIGKILL: %v", werr)
		}

		s, err := storetest.OpenWith(storetest.Options{Dir: dir})
		if err != nil {
			t.Fatalf("reopen after SIGKILL: %v", err)
		}
		toks, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]store.Token{}
		for _, tok := range toks {
			byName[tok.Name] = tok
		}
		for name, digest := range reported {
			tok, ok := byName[name]
			if !ok {
				t.Errorf("round %d: token %s was reported created but is gone", round, name)
				continue
			}
			if got := hex.EncodeToString(tok.Digest[:]); got != digest {
				t.Errorf("round %d: token %s digest %s, want %s", round, name, got, digest)
			}
		}
		// At most the one create in flight at the kill may have landed unreported.
		if extra := len(toks) - len(reported); extra > 1 {
			t.Errorf("round %d: %d tokens stored, %d reported", round, len(toks), len(reported))
		}
		t.Logf("round %d: killed after %d reported creates; %d tokens on disk", round, len(reported), len(toks))
		if round == 0 {
			// Start the next child on an empty store again, through the API.
			names := make([]string, 0, len(toks))
			for _, tok := range toks {
				names = append(names, tok.Name)
			}
			if _, err := s.Delete(admin, names); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
