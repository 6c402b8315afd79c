import Testing

@testable import OasisBits

@Test func builds() {}
