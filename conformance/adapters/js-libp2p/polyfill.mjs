// Node 20 lacks Promise.withResolvers (Node >= 22 has it); js-libp2p's queue (it-queue via
// p-retry 8) calls it on the first provide. adapter.mjs imports this module first.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new Promise((resolveWith, rejectWith) => {
      resolve = resolveWith
      reject = rejectWith
    })
    return { promise, resolve, reject }
  }
}
