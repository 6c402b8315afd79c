import Testing

@testable import OasisNet

@Test func builds() {}
