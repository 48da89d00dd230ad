module srl/bench/nrload

go 1.22
