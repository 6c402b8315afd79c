// oasis-bench: see bench/README.md. Usage: oasis-bench [--out FILE] [--quick] [--only GROUP]

import Glibc

var outputPath: String? = nil
var quick = false
var only: String? = nil
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--out": outputPath = arguments.popFirst()
    case "--quick": quick = true
    case "--only": only = arguments.popFirst()
    default:
        print("usage: oasis-bench [--out FILE] [--quick] [--only GROUP]")
        exit(2)
    }
}

let scale = quick ? 10 : 1
let report = Report()
print("allocation counting: \(allocationCountingActive ? "on" : "off (run through bench/run.sh)")")
print(Report.header)
let groups: [(String, (Report, Int) -> Void)] = [
    ("bits", runBitsBenchmarks),
    ("loop", runLoopBenchmarks),
    ("stack", runStackBenchmarks),
    ("openflow", runOpenFlowBenchmarks),
    ("xen", runXenBenchmarks),
]
for (group, run) in groups where only == nil || only == group {
    run(report, scale)
}

if let outputPath {
    let file = fopen(outputPath, "w")
    if let file {
        fputs(report.markdown, file)
        fclose(file)
    }
}
