package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tapeStep is one line of demo.tape that the replay acts on.
type tapeStep struct {
	line   int
	cmd    string // VHS command, or "expect", "expect-row", "expect-only"
	arg    string
	repeat int
	hidden bool
}

// tmuxKeys maps VHS key commands to tmux key names.
var tmuxKeys = map[string]string{
	"Enter": "Enter", "Tab": "Tab", "Space": "Space", "Backspace": "BSpace", "Escape": "Escape",
	"Up": "Up", "Down": "Down", "Left": "Left", "Right": "Right",
	"Ctrl+S": "C-s", "Ctrl+C": "C-c", "Shift+Tab": "BTab", "PageUp": "PPage", "PageDown": "NPage",
}

// readTape reads the commands demo.tape uses. Anything else is an error, so the
// tape cannot drift beyond what this replay understands.
func readTape(path string) ([]tapeStep, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var steps []tapeStep
	hidden := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			for _, kind := range []string{"expect-only", "expect-row", "expect"} {
				if rest, ok := strings.CutPrefix(line, "# "+kind+":"); ok {
					steps = append(steps, tapeStep{line: n, cmd: kind, arg: strings.TrimSpace(rest), hidden: hidden})
					break
				}
			}
			continue
		}
		cmd, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		step := tapeStep{line: n, cmd: cmd, repeat: 1, hidden: hidden}
		switch {
		case cmd == "Output" || cmd == "Set" || cmd == "Screenshot" || cmd == "Require":
			continue
		case cmd == "Hide" || cmd == "Show":
			hidden = cmd == "Hide"
			continue
		case cmd == "Type" || strings.HasPrefix(cmd, "Type@"):
			s, err := unquote(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			step.cmd, step.arg = "Type", s
		case cmd == "Sleep":
			if _, err := parseSleep(rest); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			step.arg = rest
		case cmd == "Wait" || strings.HasPrefix(cmd, "Wait+") || strings.HasPrefix(cmd, "Wait@"):
			// VHS: Wait[+Screen][@timeout] /regex/ waits until the regex matches
			// the last line (or, with +Screen, anything on the screen).
			if len(rest) < 2 || rest[0] != '/' || rest[len(rest)-1] != '/' {
				return nil, fmt.Errorf("line %d: Wait needs a /regex/", n)
			}
			if _, err := regexp.Compile(rest[1 : len(rest)-1]); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			step.cmd, step.arg = "Wait", rest[1:len(rest)-1]
			if strings.HasPrefix(cmd, "Wait+Screen") {
				step.cmd = "Wait+Screen"
			}
		default:
			if _, ok := tmuxKeys[cmd]; !ok {
				return nil, fmt.Errorf("line %d: the replay does not know %q", n, cmd)
			}
			if rest != "" {
				r, err := strconv.Atoi(rest)
				if err != nil {
					return nil, fmt.Errorf("line %d: repeat count %q", n, rest)
				}
				step.repeat = r
			}
		}
		steps = append(steps, step)
	}
	return steps, sc.Err()
}

func unquote(s string) (string, error) {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'' || s[0] == '`') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1], nil
	}
	return "", fmt.Errorf("unquoted string %s", s)
}

func parseSleep(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sleep %q", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// TestDemoTapeReplays types demo.tape into the real binary in tmux and checks
// every screen the tape says it shows.
func TestDemoTapeReplays(t *testing.T) {
	requireTool(t, "tmux")
	requireTool(t, "bash")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := readTape(filepath.Join(root, "demo.tape"))
	if err != nil {
		t.Fatal(err)
	}
	// The demo must keep showing the whole flow.
	var expects []string
	for _, s := range steps {
		if strings.HasPrefix(s.cmd, "expect") {
			expects = append(expects, s.arg)
		}
	}
	all := strings.Join(expects, "\n")
	for _, must := range []string{"Application Tokens", "may contain only letters", "will not be shown again", "Inactive", "Blocked"} {
		if !strings.Contains(all, must) {
			t.Fatalf("demo.tape no longer shows %q", must)
		}
	}

	home := t.TempDir()
	// The tape builds the binary: share the developer's Go caches, not the temp HOME's.
	env := append(cleanEnv(home), "HISTFILE=/dev/null")
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		env = append(env, v+"="+strings.TrimSpace(runCmd(t, "go", "env", v)))
	}
	// 1200x700 at font size 16 is about 120x36 cells in VHS.
	tm := newTmux(t, 120, 36, env, "bash", "--norc", "--noprofile")
	_ = runCmd(t, "tmux", "-L", tm.sock, "send-keys", "-t", "main", "export PS1='$ '; cd "+shellQuoteTest(root)+" && clear", "Enter")
	tm.waitFor(5*time.Second, "$")
	for _, s := range steps {
		switch s.cmd {
		case "Type":
			tm.typeText(s.arg)
		case "Sleep":
			d, _ := parseSleep(s.arg)
			time.Sleep(min(d, 300*time.Millisecond))
		case "expect":
			tm.waitFor(60*time.Second, s.arg)
		case "expect-only":
			deadline := time.Now().Add(120 * time.Second)
			for strings.TrimSpace(tm.screen()) != s.arg {
				if time.Now().After(deadline) {
					t.Fatalf("line %d: screen is not just %q:\n%s", s.line, s.arg, tm.screen())
				}
				time.Sleep(200 * time.Millisecond)
			}
		case "Wait", "Wait+Screen":
			re := regexp.MustCompile(s.arg)
			eventually(t, 120*time.Second, fmt.Sprintf("line %d: %s /%s/", s.line, s.cmd, s.arg), func() bool {
				screen := strings.TrimRight(tm.screen(), "\n ")
				if s.cmd == "Wait" {
					screen = screen[strings.LastIndex(screen, "\n")+1:]
				}
				return re.MatchString(screen)
			})
		case "expect-row":
			words := strings.Fields(s.arg)
			eventually(t, 15*time.Second, fmt.Sprintf("line %d: a row with %q", s.line, words), func() bool {
				for _, l := range strings.Split(tm.screen(), "\n") {
					ok := true
					for _, w := range words {
						ok = ok && strings.Contains(l, w)
					}
					if ok && !strings.HasPrefix(strings.TrimSpace(l), "/") {
						return true
					}
				}
				return false
			})
		default:
			for i := 0; i < s.repeat; i++ {
				tm.send(tmuxKeys[s.cmd])
			}
		}
	}
}

func shellQuoteTest(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
