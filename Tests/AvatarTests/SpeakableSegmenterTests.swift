import AvatarCore
import AvatarConversation
import Testing

@Suite("Speakable stream")
struct SpeakableSegmenterTests {
    /// Feeds `text` one character at a time, as a worst-case token stream.
    func segments(_ text: String, minClause: Int = 40) -> [SpeakableSegment] {
        var segmenter = SpeakableSegmenter(minClause: minClause)
        var result: [SpeakableSegment] = []
        for character in text { result += segmenter.feed(String(character)) }
        if let last = segmenter.flush() { result.append(last) }
        return result
    }

    @Test("English sentences are cut at . ! ? as soon as the next character arrives")
    func english() {
        #expect(segments("Hi there! How are you? I am fine.").map(\.text) == ["Hi there!", "How are you?", "I am fine."])
        var segmenter = SpeakableSegmenter()
        #expect(segmenter.feed("Hello.").isEmpty)
        #expect(segmenter.feed(" W").map(\.text) == ["Hello."])
    }

    @Test("Abbreviations, initials and numbers do not end a sentence")
    func abbreviations() {
        #expect(segments("Dr. Smith met Mr. Brown at 3.14 p.m. yesterday. Then they left.").map(\.text)
            == ["Dr. Smith met Mr. Brown at 3.14 p.m. yesterday.", "Then they left."])
        #expect(segments("J. R. R. Tolkien wrote it. Read it!").map(\.text) == ["J. R. R. Tolkien wrote it.", "Read it!"])
        #expect(segments("It costs 1,5 million, e.g. a lot. Wow.").map(\.text) == ["It costs 1,5 million, e.g. a lot.", "Wow."])
    }

    @Test("Russian punctuation and abbreviations")
    func russian() {
        #expect(segments("Привет! Как дела? Я живу в г. Москве, т. е. в столице. Ура…").map(\.text)
            == ["Привет!", "Как дела?", "Я живу в г. Москве, т. е. в столице.", "Ура…"])
        #expect(segments("А. С. Пушкин — поэт. «Правда?» — спросила она.").map(\.text) == ["А. С. Пушкин — поэт.", "«Правда?» — спросила она."])
    }

    @Test("Long sentences are cut at clause punctuation; short ones stay whole")
    func clauses() {
        let long = "When the sun goes down over the quiet sea, the little boats come home, and everyone has dinner."
        #expect(segments(long).map(\.text) == ["When the sun goes down over the quiet sea,", "the little boats come home, and everyone has dinner."])
        #expect(segments("Yes, I think so.").map(\.text) == ["Yes, I think so."])
    }

    @Test("Emoji stay in the text but are not spoken")
    func emoji() {
        let result = segments("I love cats 🐱😊! Do you? 👍🏽 Great 🇫🇷.")
        #expect(result.map(\.text) == ["I love cats 🐱😊!", "Do you?", "👍🏽 Great 🇫🇷."])
        #expect(result.map(\.speech) == ["I love cats !", "Do you?", "Great ."])
        #expect(SpeakableSegmenter.speakable("Room #5 has *3* cats") == "Room 5 has 3 cats")
    }

    @Test("Streaming in tokens gives the same segments as one piece")
    func chunking() {
        let text = "Well, Dr. Who is 900 years old. Isn't that amazing?! Let's talk about it 🚀 later."
        var segmenter = SpeakableSegmenter()
        var whole = segmenter.feed(text)
        if let last = segmenter.flush() { whole.append(last) }
        #expect(segments(text) == whole)
        #expect(whole.count == 3)
    }
}
