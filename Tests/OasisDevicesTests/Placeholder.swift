import Testing

@testable import OasisDevices

@Test func builds() {}
