package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/worker"
)

// The README documents what the code has: every command, every environment
// variable the worker reads (with its default), and every category.
func TestReadmeMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for name := range commands {
		if !strings.Contains(readme, "`bouncer "+name) {
			t.Errorf("README does not document `bouncer %s`", name)
		}
	}
	for _, v := range worker.EnvVars {
		row := "| `" + v.Name + "` |"
		i := strings.Index(readme, row)
		if i < 0 {
			t.Errorf("README's configuration table lacks %s", v.Name)
			continue
		}
		line, _, _ := strings.Cut(readme[i:], "\n")
		if v.Default != "" && !strings.Contains(line, v.Default) {
			t.Errorf("README gives %s a default other than %q: %s", v.Name, v.Default, line)
		}
	}
	for _, c := range classify.Categories {
		if !strings.Contains(readme, "| `"+string(c)+"` |") {
			t.Errorf("README's category table lacks %s", c)
		}
	}
	if !strings.Contains(readme, "go test -race -shuffle=on ./...") {
		t.Error("README does not name the test command .ci/run runs")
	}
	ci, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), "go test -race -shuffle=on ./...") {
		t.Error(".ci/run does not run the README's test command")
	}
}
