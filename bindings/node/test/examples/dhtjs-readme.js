// dht.js's README example, as written but for the require line and the placeholders it
// leaves to the reader (the node id, the address and port to connect to, the infohash),
// which the test fills in from the environment: a loopback bittorrent-dht network.
var dht = require('dhtkit/dht.js');

// Create DHT node (server)
var node = dht.node.create(/* optional UDP port there */);

// Connect to known node in network
node.connect({
  id: new Buffer(process.env.CONNECT_ID, 'hex'), /* <-- optional */
  address: process.env.CONNECT_ADDRESS,
  port: Number(process.env.CONNECT_PORT)
});

// Tell everyone that you have services to advertise
var hash = new Buffer(process.env.INFOHASH, 'hex');
node.advertise(hash, 13589 /* port */);

// Wait for someone to appear
node.on('peer:new', function (infohash, peer, isAdvertised) {
  // Ignore other services
  if (!isAdvertised) return;

  console.log(peer.address, peer.port);

  // Stop listening
  node.close();

  // Returns node's state as a javascript object
  var state = node.save();

  // Create node from existing state
  var old = dht.node.create(state);

  // Just cleaning up
  old.close();
});
