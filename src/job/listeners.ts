/** A coordinator's events: each listener of an event hears it in the order it was added. */
export class Listeners<Events extends { [E in keyof Events]: (...args: any[]) => void }> {
  private readonly byEvent = new Map<keyof Events, Array<Events[keyof Events]>>()

  on<E extends keyof Events>(event: E, listener: Events[E]): void {
    const listeners = this.byEvent.get(event) ?? []
    listeners.push(listener)
    this.byEvent.set(event, listeners)
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    for (const listener of this.byEvent.get(event) ?? []) (listener as Events[E])(...args)
  }
}
