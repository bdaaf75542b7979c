// Command promlint lints Prometheus text exposition read from stdin with
// client_golang's promlint package: the same checks `promtool check metrics`
// runs (naming, units, _total suffixes, help text, ...), without needing a
// Prometheus release on the machine.
//
//	curl -s localhost:9901/metrics | promlint
//
// Exit status: 0 clean, 1 problems found (one "metric: problem" per line on
// stdout), 2 the input is not valid exposition text.
//
// -ignore takes a regular expression over "metric: problem" lines, for
// problems in metrics regate does not name itself (prom-client's defaults);
// ignored problems are still listed on stderr so they stay visible.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func main() {
	ignore := flag.String("ignore", "", "regular expression over \"metric: problem\" lines to report but not fail on")
	flag.Parse()

	var ignoreRe *regexp.Regexp
	if *ignore != "" {
		re, err := regexp.Compile(*ignore)
		if err != nil {
			fmt.Fprintf(os.Stderr, "promlint: bad -ignore: %v\n", err)
			os.Exit(2)
		}
		ignoreRe = re
	}

	problems, err := promlint.New(os.Stdin).Lint()
	if err != nil {
		fmt.Fprintf(os.Stderr, "promlint: cannot parse exposition: %v\n", err)
		os.Exit(2)
	}

	failed := 0
	for _, p := range problems {
		line := fmt.Sprintf("%s: %s", p.Metric, p.Text)
		if ignoreRe != nil && ignoreRe.MatchString(line) {
			fmt.Fprintf(os.Stderr, "ignored: %s\n", line)
			continue
		}
		fmt.Println(line)
		failed++
	}
	if failed > 0 {
		os.Exit(1)
	}
}
