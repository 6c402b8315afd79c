// oasis-bench: see bench/README.md.
// Usage: oasis-bench [--out FILE] [--quick] [--only GROUP] [--scale N] [--runs N]
//                    [--figure WORD]
// (--figure picks one figure of the stack group, `echo` or `dns`, or of the tcp group,
// `bulk`, `state` or `churn`; --scale divides every operation count, --runs sets the timed runs per figure: for
// callgrind, where instruction counts, not times, are wanted.)

import Glibc

var outputPath: String? = nil
var quick = false
var only: String? = nil
var customScale: Int? = nil
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--out": outputPath = arguments.popFirst()
    case "--quick": quick = true
    case "--only": only = arguments.popFirst()
    case "--figure": figureFilter = arguments.popFirst()
    case "--scale": customScale = arguments.popFirst().flatMap { Int($0) }
    case "--runs": timedRuns = arguments.popFirst().flatMap { Int($0) } ?? timedRuns
    default:
        print(
            "usage: oasis-bench [--out FILE] [--quick] [--only GROUP] [--scale N] [--runs N]"
                + " [--figure WORD]")
        exit(2)
    }
}

let scale = max(1, customScale ?? (quick ? 10 : 1))
let report = Report()
print("allocation counting: \(allocationCountingActive ? "on" : "off (run through bench/run.sh)")")
print("retain counting: \(retainCountingActive ? "on" : "off (run through bench/run.sh)")")
print(Report.header)
let groups: [(String, (Report, Int) -> Void)] = [
    ("bits", runBitsBenchmarks),
    ("loop", runLoopBenchmarks),
    ("stack", runStackBenchmarks),
    ("tcp", runTCPBenchmarks),
    ("openflow", runOpenFlowBenchmarks),
    ("flowtable", runFlowTableBenchmarks),
    ("xen", runXenBenchmarks),
    ("zone", runZoneBenchmarks),
    ("dns", runDNSBenchmarks),
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
