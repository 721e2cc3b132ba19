// The broker as a library: createBroker(config) starts it in-process.
export { createBroker, type BrokerHandle, type BrokerAddresses, type CreateBrokerOptions } from './server.js'
export { loadConfig, resolveConfig, ConfigError, type BrokerConfig, type ConfigInput } from './broker/config/config.js'
export { defaultOptions } from './broker/config/defaults.js'
