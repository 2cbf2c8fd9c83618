package annals

// NameProblem and StreamIDProblem expose the client-side name rule to the external tests, which
// compare it with the database's.
var (
	NameProblem     = nameProblem
	StreamIDProblem = streamIDProblem
)
