package classify

import (
	"fmt"
	"os"
	"testing"
)

func TestZZDump(t *testing.T) {
	f := os.Getenv("DUMP")
	if f == "" {
		t.Skip()
	}
	raw, _ := os.ReadFile(f)
	c := New(Options{})
	tree, err := c.readTree(fixLineEnds(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tree.leaves {
		fmt.Printf("LEAF %s cs=%s cte=%s depth=%d len=%d\n", p.ctype, p.charset, p.cte, p.depth, len(p.raw))
		if os.Getenv("FULL") != "" {
			fmt.Println(p.text())
		}
	}
	rep, err := c.Classify(raw)
	fmt.Printf("%+v\n%v\n", rep, err)
}
