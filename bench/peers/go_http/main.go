// go_http: Go's net/http serving a folder, the Go peer of bench/run_http.sh (issue 12's
// section 6 names it): http.FileServer on a plain port and, with a certificate, on a TLS port.
// GOMAXPROCS comes from the environment (run_http.sh sets 1).
//
//	go_http -dir DIR -port N [-tls-port N -cert FILE -key FILE [-no-tickets]]
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/http"
)

func main() {
	dir := flag.String("dir", ".", "the folder to serve")
	port := flag.Int("port", 8080, "plain HTTP port")
	tlsPort := flag.Int("tls-port", 0, "HTTPS port (0: none)")
	cert := flag.String("cert", "", "certificate chain (PEM)")
	key := flag.String("key", "", "private key (PEM)")
	noTickets := flag.Bool("no-tickets", false, "no TLS session tickets (no resumption)")
	flag.Parse()
	h := http.FileServer(http.Dir(*dir))
	if *tlsPort != 0 {
		go func() {
			srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *tlsPort), Handler: h,
				TLSConfig: &tls.Config{SessionTicketsDisabled: *noTickets}}
			log.Fatal(srv.ListenAndServeTLS(*cert, *key))
		}()
	}
	log.Fatal(http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", *port), h))
}
