// tcp_echo peer in Go (bench/run_net.sh builds it offline): standard library only.
module tcpechopeer

go 1.19
