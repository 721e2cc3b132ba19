// The broker as a library: createBroker(config) starts it in-process.
export { createBroker, type BrokerHandle, type BrokerAddresses, type CreateBrokerOptions } from './broker/create-broker.js'
export { loadConfig, resolveConfig, ConfigError, type BrokerConfig, type ConfigInput } from './broker/config.js'
export { defaultOptions } from './broker/defaults.js'
