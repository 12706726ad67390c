// AlphaReign dht-server's README example ("Getting Started"), as written but for the
// require line. The test starts it with `-r ./loopback-defaults.js`, which points the
// defaults (bootstrap nodes, address, port) at a loopback network.
const DHT = require('dhtkit/dht-server');

const options = {};
const dht = new DHT(options);

dht.on('listening', (options) => {
	console.log(`DHT listening on ${options.address}:${options.port}`);
});
dht.on('announcePeerQuery', (message) => {
	console.log(`onAnnouncePeerQuery - new torrent: ${message.a.info_hash.toString('hex')}`);
});
dht.on('getPeersQuery', (message) => {
	console.log(`onGetPeersQuery - new torrent: ${message.a.info_hash.toString('hex')}`);
});

// Start the DHT Server
dht.start();

// Make some neighbours to ensure we get fulling on the network
dht.makeNeighbours();
