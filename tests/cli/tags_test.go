package cli_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// M15 from the command line: a tagged append, a multi-stream append from stdin, the tagged read
// with its position, and a conditional append that passes, then fails on the same position.
func TestCLITagsAndMultiAppend(t *testing.T) {
	t.Parallel()
	db := newDB(t)

	ok(t, db, "append", "enrolment-1", "--expected", "no-stream", "--type", "Enrolled", "--data", "{}",
		"--tag", "course:7", "--tag", "student:1")
	r := annalsIn(t, db, `[{"stream_id":"enrolment-2","expected_version":0,"events":[{"type":"Enrolled","tags":["course:7","student:2"]}]},
		{"stream_id":"student-2","events":[{"type":"Joined"}]}]`, "append-multi", "-")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^appended to enrolment-2: version 1, .*\nappended to student-2: version 1, `, r.stdout)

	// The gap-free read shows events once every older transaction of the cluster has ended.
	var out string
	for i := 0; ; i++ {
		out = ok(t, db, "tagged", "--tag", "course:7", "--type", "Enrolled")
		if regexp.MustCompile(`2 event\(s\)`).MatchString(out) {
			break
		}
		require.Less(t, i, 600, out)
		time.Sleep(100 * time.Millisecond)
	}
	require.Contains(t, out, "course:7,student:2")
	pos := regexp.MustCompile(`read up to (\d+:\d+)`).FindStringSubmatch(out)
	require.NotNil(t, pos, out)

	booking := `[{"stream_id":"enrolment-3","expected_version":0,"events":[{"type":"Enrolled","tags":["course:7","student:3"]}]}]`
	r = annalsIn(t, db, booking, "append-multi", "-", "--if-none-tagged", "course:7", "--if-none-type", "Enrolled", "--after", pos[1])
	require.Equal(t, 0, r.code, r.stderr)
	r = annalsIn(t, db, `[{"stream_id":"enrolment-4","events":[{"type":"Enrolled","tags":["course:7","student:4"]}]}]`,
		"append-multi", "-", "--if-none-tagged", "course:7", "--after", pos[1])
	require.Equal(t, 4, r.code, r.stdout) // a conflict, as for a wrong expected version
	require.Contains(t, r.stderr, "condition failed: event 1 of stream 'enrolment-3'")

	r = annals(t, db, "tagged")
	require.Equal(t, 2, r.code, r.stderr)
	r = annals(t, db, "append-multi", "-", "--after", "1:2")
	require.Equal(t, 2, r.code, r.stderr)
	r = annals(t, db, "tagged", "--tag", "x", "--after", "nope")
	require.Equal(t, 2, r.code, r.stderr)
}
