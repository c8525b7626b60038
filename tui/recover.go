package tui

import (
	"fmt"
	"reflect"
	"runtime/debug"

	tea "github.com/charmbracelet/bubbletea"
)

// A panic in a screen must not end the session: Bubble Tea would print it to
// the process's stdout (the server's, over SSH), bypassing the logs, and leave
// the admin's terminal in the alternate screen. The root recovers it in Update,
// View and every command, logs it with the session's logger (Deps.Logger) and
// shows an error line; the session goes on.

// panicMsg reports a panic recovered in a command.
type panicMsg struct {
	where string
	value any
	stack []byte
}

// recovered logs a panic and puts it in the status line. A screen that cannot
// be drawn panics on every frame: that is logged once, not per frame.
func (m *Model) recovered(where string, value any, stack []byte) {
	if where == "view" {
		v := fmt.Sprint(value)
		if v == m.lastViewPanic {
			return
		}
		m.lastViewPanic = v
	}
	m.deps.Logger.Error("tui: recovered from a panic", "where", where, "panic", fmt.Sprint(value),
		"actor", m.deps.Actor.String(), "stack", string(stack))
	m.status = fmt.Sprintf("Internal error (%s): %v; the session goes on, and the error is logged", where, value)
	m.statusErr = true
}

// safeCmd wraps cmd so that a panic in it, or in any command it batches or
// sequences, becomes a panicMsg.
func safeCmd(cmd tea.Cmd) tea.Cmd {
	if cmd == nil {
		return nil
	}
	return func() (msg tea.Msg) {
		defer func() {
			if r := recover(); r != nil {
				msg = panicMsg{where: "command", value: r, stack: debug.Stack()}
			}
		}()
		msg = cmd()
		switch mm := msg.(type) {
		case tea.BatchMsg:
			out := make(tea.BatchMsg, len(mm))
			for i, c := range mm {
				out[i] = safeCmd(c)
			}
			return out
		}
		// tea.Sequence's message is an unexported slice of commands: rebuild it
		// from the wrapped ones.
		if v := reflect.ValueOf(msg); v.Kind() == reflect.Slice && v.Type().Elem() == reflect.TypeOf(tea.Cmd(nil)) {
			cmds := make([]tea.Cmd, v.Len())
			for i := range cmds {
				cmds[i] = safeCmd(v.Index(i).Interface().(tea.Cmd))
			}
			return tea.Sequence(cmds...)()
		}
		return msg
	}
}
