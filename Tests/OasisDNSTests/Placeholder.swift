import Testing

@testable import OasisDNS

@Test func builds() {}
