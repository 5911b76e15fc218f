// Module for the Go peer benchmark (single main.go, standard library only; builds offline).
module weft/bench/peers/go

go 1.19
