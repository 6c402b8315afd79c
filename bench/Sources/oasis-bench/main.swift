// oasis-bench: see bench/README.md. Usage: oasis-bench [--out FILE] [--quick]

import Glibc

var outputPath: String? = nil
var quick = false
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--out": outputPath = arguments.popFirst()
    case "--quick": quick = true
    default:
        print("usage: oasis-bench [--out FILE] [--quick]")
        exit(2)
    }
}

let scale = quick ? 10 : 1
let report = Report()
print("allocation counting: \(allocationCountingActive ? "on" : "off (run through bench/run.sh)")")
print(Report.header)
runBitsBenchmarks(report, scale: scale)

if let outputPath {
    let file = fopen(outputPath, "w")
    if let file {
        fputs(report.markdown, file)
        fclose(file)
    }
}
