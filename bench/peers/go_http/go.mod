// Module for the Go net/http peer of bench/run_http.sh (standard library only; builds offline).
module weft/bench/peers/go_http

go 1.19
