// etcd put-rate reference for bench/etcd_client_bench.py: etcd's own Go client (clientv3),
// --conc goroutines putting --total keys of --size bytes; prints puts/s. Built with
// Debian's golang-go and golang-etcd-server-dev (GOPATH mode), nothing downloaded.
package main

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "")
	total := flag.Int("total", 2000, "")
	conc := flag.Int("conc", 50, "")
	prefix := flag.String("prefix", "/bench/go/", "")
	size := flag.Int("size", 256, "")
	flag.Parse()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	val := make([]byte, *size)
	for i := range val {
		val[i] = 'x'
	}
	jobs := make(chan int, *total)
	for i := 0; i < *total; i++ {
		jobs <- i
	}
	close(jobs)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if _, err := cli.Put(context.Background(), fmt.Sprintf("%s%d", *prefix, i), string(val)); err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%.1f\n", float64(*total)/time.Since(start).Seconds())
}
