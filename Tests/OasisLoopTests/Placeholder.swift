import Testing

@testable import OasisLoop

@Test func builds() {}
