package annals

import "github.com/annals-db/annals/goapi/internal/names"

// The client checks names before a round trip with the database's own rule and words.
var (
	nameProblem     = names.Problem
	streamIDProblem = names.StreamIDProblem
)
