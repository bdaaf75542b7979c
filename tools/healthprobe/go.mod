module github.com/regate/regate/tools/healthprobe

go 1.25.0
