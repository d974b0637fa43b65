package broker

// WriteLocalInfo lets tests publish a broker.json without holding the lock
// of a running broker.
var WriteLocalInfo = writeLocalInfo
