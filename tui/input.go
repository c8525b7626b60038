package tui

import (
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// Bubble Tea v1 reports every printable character of one read from the
// terminal as a single KeyRunes message, whose String() is the characters
// themselves: "jjjj" matches no binding and " end" matches End. Input arrives
// in such bursts whenever it is fast (key repeat over SSH, a loaded machine, a
// paste without bracketed paste), so the root splits it once, before any key
// binding sees it, into one key message per character.

// splitKey turns one key message from the terminal into the keys it stands
// for, in order:
//   - a burst of characters becomes one key per character (a space is the
//     space key, as when typed alone);
//   - alt+<key> where the terminal sends ESC and then the key's own byte(s)
//     (a character, space, enter, tab, backspace, a control key) becomes esc,
//     then the key: "esc then j" in one read arrives as alt+j, and the two
//     cannot be told apart. Keys sent as one escape sequence (alt+left is
//     CSI 1;3D) are alt keys beyond doubt and stay as they are;
//   - a bracketed paste stays one message (it is text, not keys), with every
//     CRLF or lone CR made one newline;
//   - anything else is itself.
func splitKey(msg tea.KeyMsg) []tea.KeyMsg {
	if msg.Paste {
		msg.Alt = false
		msg.Runes = pasteRunes(msg.Runes)
		return []tea.KeyMsg{msg}
	}
	var out []tea.KeyMsg
	if msg.Alt && (msg.Type == tea.KeyRunes || msg.Type == tea.KeySpace || msg.Type >= 0) {
		// KeyRunes and KeySpace are negative; control bytes (ctrl keys,
		// enter, tab, backspace) are 0 to 127.
		out = append(out, tea.KeyMsg{Type: tea.KeyEsc})
		msg.Alt = false
	}
	if (msg.Type != tea.KeyRunes && msg.Type != tea.KeySpace) || len(msg.Runes) <= 1 {
		return append(out, msg)
	}
	for _, r := range msg.Runes {
		out = append(out, runeKey(r))
	}
	return out
}

// runeKey is the key message of one typed character.
func runeKey(r rune) tea.KeyMsg {
	switch r {
	case ' ':
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	case '\r', '\n':
		return tea.KeyMsg{Type: tea.KeyEnter}
	case '\t':
		return tea.KeyMsg{Type: tea.KeyTab}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}}
}

// pasteRunes is pasted text with each CRLF, and each lone CR, as one newline:
// text copied from another system must not gain blank lines.
func pasteRunes(rs []rune) []rune {
	if !strings.ContainsRune(string(rs), '\r') {
		return rs
	}
	s := strings.ReplaceAll(string(rs), "\r\n", "\n")
	return []rune(strings.ReplaceAll(s, "\r", "\n"))
}
