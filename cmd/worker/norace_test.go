//go:build !race

package main

// raceEnabled reports whether the tests run under the race detector, whose shadow memory
// multiplies a process's resident set: memory bounds account for it.
const raceEnabled = false
